import { PlusOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  Alert,
  App,
  Button,
  Card,
  Form,
  Input,
  InputNumber,
  Modal,
  Popconfirm,
  Table,
  Tag,
  Typography,
} from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../api';
import { formatTime } from '../format';
import { CopyButton, errorText, PageState } from '../page-state';
import type { ApiToken } from '../types';

export function TokensPage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<{ name: string; expires_in_days?: number | null }>();
  const [adding, setAdding] = useState(false);
  const [created, setCreated] = useState<ApiToken | null>(null);
  const list = useQuery({
    queryKey: ['tokens'],
    queryFn: () => api.get<{ items: ApiToken[] }>('/api/v1/me/tokens'),
  });
  const create = useMutation({
    mutationFn: (v: { name: string; expires_in_days?: number | null }) =>
      api.post<ApiToken>('/api/v1/me/tokens', {
        name: v.name,
        ...(v.expires_in_days ? { expires_in_days: v.expires_in_days } : {}),
      }),
    onSuccess: (token) => {
      setAdding(false);
      form.resetFields();
      setCreated(token);
      void queryClient.invalidateQueries({ queryKey: ['tokens'] });
    },
    onError: (err) => form.setFields([{ name: 'name', errors: [errorText(err)] }]),
  });
  const revoke = useMutation({
    mutationFn: (id: number) => api.del(`/api/v1/me/tokens/${id}`),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['tokens'] }),
    onError: (err) => void message.error(errorText(err)),
  });
  const items = list.data?.items ?? [];
  return (
    <Card
      title={t('menu.tokens')}
      extra={
        <Button type="primary" icon={<PlusOutlined />} onClick={() => setAdding(true)}>
          {t('tokens.add')}
        </Button>
      }
    >
      <PageState
        loading={list.isLoading}
        error={list.error}
        onRetry={() => void list.refetch()}
        empty={items.length === 0}
      >
        <Table<ApiToken>
          rowKey="id"
          dataSource={items}
          pagination={false}
          columns={[
            { title: t('common.name'), dataIndex: 'name' },
            {
              title: t('common.role'),
              dataIndex: 'role',
              render: (r: string) => <Tag>{t(`role.${r}`)}</Tag>,
            },
            { title: t('common.createdAt'), dataIndex: 'created_at', render: formatTime },
            {
              title: t('tokens.expires'),
              dataIndex: 'expires_at',
              render: (v: string | null) => (v ? formatTime(v) : t('common.never')),
            },
            {
              title: t('tokens.lastUsed'),
              dataIndex: 'last_used_at',
              render: (v: string | null) => (v ? formatTime(v) : t('common.never')),
            },
            {
              title: t('common.actions'),
              key: 'actions',
              render: (_: unknown, tok) => (
                <Popconfirm title={t('common.confirmDelete')} onConfirm={() => revoke.mutate(tok.id)}>
                  <Button size="small" danger>
                    {t('tokens.revoke')}
                  </Button>
                </Popconfirm>
              ),
            },
          ]}
        />
      </PageState>
      <Modal
        title={t('tokens.add')}
        open={adding}
        onCancel={() => setAdding(false)}
        onOk={() => form.submit()}
        okButtonProps={{ loading: create.isPending }}
        forceRender
      >
        <Form form={form} layout="vertical" onFinish={(v) => create.mutate(v)}>
          <Form.Item name="name" label={t('common.name')} rules={[{ required: true }]}>
            <Input />
          </Form.Item>
          <Form.Item name="expires_in_days" label={t('tokens.expiresInDays')}>
            <InputNumber min={1} style={{ width: '100%' }} />
          </Form.Item>
        </Form>
      </Modal>
      <Modal
        title={t('tokens.created')}
        open={created !== null}
        onCancel={() => setCreated(null)}
        footer={[
          <CopyButton key="copy" text={created?.token ?? ''} testId="copy-token" />,
          <Button key="close" type="primary" onClick={() => setCreated(null)}>
            {t('common.close')}
          </Button>,
        ]}
      >
        <Alert type="warning" showIcon title={t('tokens.showOnce')} style={{ marginBottom: 12 }} />
        <Typography.Paragraph code data-testid="new-token" style={{ wordBreak: 'break-all' }}>
          {created?.token}
        </Typography.Paragraph>
      </Modal>
    </Card>
  );
}
