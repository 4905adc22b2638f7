import { useQuery } from '@tanstack/react-query';
import { Button, Card, DatePicker, Form, Input, Space, Table, Typography } from 'antd';
import dayjs, { type Dayjs } from 'dayjs';
import { useTranslation } from 'react-i18next';
import { api, PAGE_SIZES, type Page } from '../api';
import { formatTime } from '../format';
import { PageState } from '../page-state';
import type { AuditEntry } from '../types';
import { useUrlState } from '../url-state';

const FIELDS = ['actor', 'action', 'subject'] as const;
/** The actor is matched exactly; an action ending in `.` matches every action that starts so. */
const PLACEHOLDER: Record<(typeof FIELDS)[number], string> = {
  actor: 'user:alice',
  action: 'alert.',
  subject: 'instance:12',
};

export function AuditPage() {
  const { t } = useTranslation();
  const url = useUrlState();
  const limit = url.getNumber('size', 50);
  const page = url.getNumber('page', 1);
  const query = {
    page,
    page_size: limit,
    actor: url.get('actor'),
    action: url.get('action'),
    subject: url.get('subject'),
    since: url.get('since'),
    until: url.get('until'),
  };
  const list = useQuery({
    queryKey: ['audit', query],
    queryFn: () => api.get<Page<AuditEntry>>('/api/v1/audit', query),
    placeholderData: (prev) => prev,
  });
  const range: [Dayjs | null, Dayjs | null] = [
    query.since ? dayjs(query.since) : null,
    query.until ? dayjs(query.until) : null,
  ];
  return (
    <Card title={t('menu.audit')}>
      <Form
        layout="inline"
        style={{ marginBottom: 16, rowGap: 8 }}
        initialValues={{ actor: query.actor, action: query.action, subject: query.subject, range }}
        onFinish={(v: { actor?: string; action?: string; subject?: string; range?: [Dayjs, Dayjs] | null }) =>
          url.set({
            actor: v.actor?.trim(),
            action: v.action?.trim(),
            subject: v.subject?.trim(),
            since: v.range?.[0]?.toISOString(),
            until: v.range?.[1]?.toISOString(),
            page: 1,
          })
        }
      >
        {FIELDS.map((f) => (
          <Form.Item key={f} name={f} label={t(`audit.${f}`)}>
            <Input allowClear style={{ width: 160 }} placeholder={PLACEHOLDER[f]} />
          </Form.Item>
        ))}
        <Form.Item name="range" label={t('audit.range')}>
          <DatePicker.RangePicker showTime />
        </Form.Item>
        <Space>
          <Button type="primary" htmlType="submit">
            {t('common.search')}
          </Button>
        </Space>
      </Form>
      <PageState loading={list.isLoading} error={list.error} onRetry={() => void list.refetch()}>
        <Table<AuditEntry>
          rowKey="id"
          size="small"
          dataSource={list.data?.items ?? []}
          loading={list.isFetching}
          pagination={{
            current: page,
            pageSize: limit,
            total: list.data?.total ?? 0,
            pageSizeOptions: PAGE_SIZES,
            showSizeChanger: true,
            showTotal: (n) => t('common.total', { count: n }),
            onChange: (p, s) => url.set({ page: p, size: s }),
          }}
          columns={[
            { title: t('audit.at'), dataIndex: 'at', width: 180, render: formatTime },
            { title: t('audit.actor'), dataIndex: 'actor', width: 140 },
            { title: t('audit.action'), dataIndex: 'action', width: 180 },
            { title: t('audit.subject'), dataIndex: 'subject', width: 200 },
            {
              title: t('audit.detail'),
              dataIndex: 'detail',
              render: (d: unknown) => (
                <Typography.Text code style={{ fontSize: 12, wordBreak: 'break-all' }}>
                  {typeof d === 'string' ? d : JSON.stringify(d)}
                </Typography.Text>
              ),
            },
          ]}
        />
      </PageState>
    </Card>
  );
}
