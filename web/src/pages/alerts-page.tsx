import { CheckOutlined, HeartOutlined, SoundOutlined, StopOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  App,
  Button,
  Card,
  Checkbox,
  DatePicker,
  Drawer,
  Form,
  Input,
  Modal,
  Select,
  Space,
  Statistic,
  Table,
  type TableColumnsType,
  Tag,
  Tooltip,
  Typography,
} from 'antd';
import type { Dayjs } from 'dayjs';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, PAGE_SIZES, type Page } from '../api';
import { displayZone, formatTime, splitList, wallTimeIn } from '../format';
import { errorText, PageState } from '../page-state';
import { useCan } from '../session';
import { ALERT_TYPES, type Alert, type AlertSummary, type Business, type Instance } from '../types';
import { useUrlState } from '../url-state';

const SEVERITY_COLOR: Record<string, string> = { critical: 'red', warning: 'orange', info: 'blue' };
const STATE_COLOR: Record<string, string> = { open: 'volcano', acknowledged: 'gold', resolved: 'green' };

/** `server_id/type/instance` when the subject is an instance. */
function instanceIdentity(subject: string): { server_id: string; type: string; instance: string } | null {
  const parts = subject.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return null;
  return { server_id: parts[0]!, type: parts[1]!, instance: parts[2]! };
}

type Action = { kind: 'acknowledge' | 'resolve' | 'mute'; alert: Alert };

function useAlertList(followed: boolean, prefix: string, enabled: boolean) {
  const url = useUrlState();
  const query = {
    q: url.get('q'),
    type: url.get('type'),
    state: url.get('state'),
    page: url.getNumber(`${prefix}page`, 1),
    page_size: url.getNumber(`${prefix}size`, 20),
    followed,
  };
  return {
    query,
    result: useQuery({
      queryKey: ['alerts', query],
      queryFn: () => api.get<Page<Alert>>('/api/v1/alerts', query),
      enabled,
    }),
  };
}

function AlertTable(props: { followed: boolean; prefix: string; onAction: (a: Action) => void }) {
  const { t } = useTranslation();
  const url = useUrlState();
  const canOperate = useCan('operator');
  const { result } = useAlertList(props.followed, props.prefix, true);
  const columns: TableColumnsType<Alert> = [
    {
      title: t('alerts.severity'),
      dataIndex: 'severity',
      width: 100,
      render: (s: string) => <Tag color={SEVERITY_COLOR[s] ?? 'default'}>{s}</Tag>,
    },
    {
      title: t('alerts.type'),
      dataIndex: 'type',
      width: 130,
      render: (v: string) => t(`alerts.types.${v}`, { defaultValue: v }),
    },
    {
      title: t('alerts.subject'),
      dataIndex: 'subject',
      render: (subject: string, a) => {
        const id = instanceIdentity(subject);
        return (
          <Space size={4} wrap>
            {a.followed && <Tag color="red">{t('alerts.followedTag')}</Tag>}
            {id ? (
              <Link
                data-testid="alert-backups-link"
                to={`/instances?server_id=${encodeURIComponent(id.server_id)}&type=${encodeURIComponent(id.type)}&instance=${encodeURIComponent(id.instance)}&backups=${encodeURIComponent(subject)}`}
              >
                {subject}
              </Link>
            ) : (
              <Typography.Text>{subject}</Typography.Text>
            )}
          </Space>
        );
      },
    },
    { title: t('alerts.business'), dataIndex: 'business', width: 100 },
    {
      title: t('alerts.summary'),
      dataIndex: 'summary',
      render: (summary: string, a) => (
        <div>
          <div>{summary}</div>
          {a.acknowledged_by && (
            <Typography.Text type="secondary" style={{ fontSize: 12 }}>
              {t('alerts.acknowledgedBy', { who: a.acknowledged_by, comment: a.ack_comment ?? '' })}
            </Typography.Text>
          )}
        </div>
      ),
    },
    {
      title: t('alerts.state'),
      dataIndex: 'state',
      width: 110,
      render: (s: string) => <Tag color={STATE_COLOR[s]}>{t(`alerts.states.${s}`)}</Tag>,
    },
    { title: t('alerts.lastEvent'), dataIndex: 'last_event_at', width: 170, render: formatTime },
    ...(canOperate
      ? [
          {
            title: t('common.actions'),
            key: 'actions',
            width: 120,
            render: (_: unknown, a: Alert) =>
              a.state === 'resolved' ? null : (
                <Space size={0}>
                  {a.state === 'open' && (
                    <Tooltip title={t('alerts.acknowledge')}>
                      <Button
                        type="text"
                        data-testid={`ack-${a.id}`}
                        icon={<CheckOutlined />}
                        onClick={() => props.onAction({ kind: 'acknowledge', alert: a })}
                      />
                    </Tooltip>
                  )}
                  <Tooltip title={t('alerts.resolve')}>
                    <Button
                      type="text"
                      data-testid={`resolve-${a.id}`}
                      icon={<StopOutlined />}
                      onClick={() => props.onAction({ kind: 'resolve', alert: a })}
                    />
                  </Tooltip>
                  {instanceIdentity(a.subject) && (
                    <Tooltip title={t('alerts.mute')}>
                      <Button
                        type="text"
                        data-testid={`mute-${a.id}`}
                        icon={<SoundOutlined />}
                        onClick={() => props.onAction({ kind: 'mute', alert: a })}
                      />
                    </Tooltip>
                  )}
                </Space>
              ),
          },
        ]
      : []),
  ];
  return (
    <PageState loading={false} error={result.error} onRetry={() => void result.refetch()}>
      <Table<Alert>
        rowKey="id"
        size="middle"
        loading={result.isLoading}
        columns={columns}
        dataSource={result.data?.items ?? []}
        pagination={{
          current: result.data?.page ?? url.getNumber(`${props.prefix}page`, 1),
          pageSize: url.getNumber(`${props.prefix}size`, 20),
          total: result.data?.total ?? 0,
          pageSizeOptions: PAGE_SIZES,
          showSizeChanger: true,
          showTotal: (n) => t('common.total', { count: n }),
          onChange: (page, size) => url.set({ [`${props.prefix}page`]: page, [`${props.prefix}size`]: size }),
        }}
      />
    </PageState>
  );
}

function FocusPanel(props: { open: boolean; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const businesses = useQuery({
    queryKey: ['businesses', 'all'],
    queryFn: () => api.get<Page<Business>>('/api/v1/businesses', { page_size: 1000 }),
    enabled: props.open,
  });
  const focus = useQuery({
    queryKey: ['focus'],
    queryFn: () => api.get<{ businesses: string[] }>('/api/v1/me/focus'),
    enabled: props.open,
  });
  const [chosen, setChosen] = useState<string[]>([]);
  useEffect(() => {
    if (focus.data) setChosen(focus.data.businesses);
  }, [focus.data]);
  const save = useMutation({
    mutationFn: (list: string[]) => api.put('/api/v1/me/focus', { businesses: list }),
    onSuccess: () => {
      void message.success(t('common.saved'));
      void queryClient.invalidateQueries({ queryKey: ['alerts'] });
      void queryClient.invalidateQueries({ queryKey: ['alert-summary'] });
      void queryClient.invalidateQueries({ queryKey: ['focus'] });
      props.onClose();
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const all = businesses.data?.items ?? [];
  return (
    <Drawer
      title={t('alerts.focus')}
      open={props.open}
      onClose={props.onClose}
      size={420}
      extra={
        <Button
          type="primary"
          loading={save.isPending}
          onClick={() => save.mutate(chosen)}
          data-testid="focus-save"
        >
          {t('common.save')}
        </Button>
      }
    >
      <Typography.Paragraph type="secondary">{t('alerts.focusHint')}</Typography.Paragraph>
      <PageState
        loading={businesses.isLoading || focus.isLoading}
        error={businesses.error ?? focus.error}
        empty={all.length === 0}
      >
        <Space style={{ marginBottom: 12 }}>
          <Button size="small" onClick={() => setChosen(all.map((b) => b.game_id))}>
            {t('alerts.selectAll')}
          </Button>
          <Button size="small" onClick={() => setChosen([])}>
            {t('alerts.selectNone')}
          </Button>
        </Space>
        <Checkbox.Group
          value={chosen}
          onChange={(v) => setChosen(v as string[])}
          style={{ display: 'flex', flexDirection: 'column', gap: 6 }}
          options={all.map((b) => ({ value: b.game_id, label: `${b.game_id} · ${b.name}` }))}
        />
      </PageState>
    </Drawer>
  );
}

function ActionModal(props: { action: Action | null; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<{ comment: string; until?: Dayjs }>();
  const action = props.action;
  const run = useMutation({
    mutationFn: async (values: { comment: string; until?: Dayjs }) => {
      if (!action) return;
      if (action.kind !== 'mute') {
        await api.post(`/api/v1/alerts/${action.alert.id}/${action.kind}`, { comment: values.comment });
        return;
      }
      const id = instanceIdentity(action.alert.subject);
      if (!id) return;
      const found = await api.get<Page<Instance>>('/api/v1/instances', { ...id, page_size: 10 });
      const instance = found.items.find(
        (i) => i.server_id === id.server_id && i.type === id.type && i.instance === id.instance,
      );
      if (!instance) throw new Error(`${action.alert.subject}: not a registered instance`);
      await api.post(`/api/v1/instances/${instance.id}/mute`, {
        until: values.until ? wallTimeIn(values.until, displayZone()) : null,
        comment: values.comment,
      });
    },
    onSuccess: () => {
      void message.success(t('alerts.done'));
      void queryClient.invalidateQueries({ queryKey: ['alerts'] });
      void queryClient.invalidateQueries({ queryKey: ['alert-summary'] });
      form.resetFields();
      props.onClose();
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const title = action ? t(`alerts.${action.kind}`) : '';
  return (
    <Modal
      title={action ? `${title}: ${action.alert.subject}` : ''}
      open={action !== null}
      onCancel={props.onClose}
      onOk={() => form.submit()}
      okText={title}
      okButtonProps={{ loading: run.isPending, ...({ 'data-testid': 'action-ok' } as object) }}
      destroyOnHidden
    >
      <Form form={form} layout="vertical" onFinish={(v) => run.mutate(v)}>
        {action?.kind === 'mute' && (
          <Form.Item
            name="until"
            label={`${t('alerts.muteUntil')} (${displayZone()})`}
            rules={[{ required: true }]}
          >
            <DatePicker showTime style={{ width: '100%' }} />
          </Form.Item>
        )}
        <Form.Item
          name="comment"
          label={t('alerts.comment')}
          rules={[{ required: true, whitespace: true, message: t('alerts.commentRequired') }]}
        >
          <Input.TextArea rows={3} maxLength={1000} data-testid="action-comment" />
        </Form.Item>
      </Form>
    </Modal>
  );
}

export function AlertsPage() {
  const { t } = useTranslation();
  const url = useUrlState();
  const [focusOpen, setFocusOpen] = useState(false);
  const [action, setAction] = useState<Action | null>(null);
  const [q, setQ] = useState(url.get('q'));
  const summary = useQuery({
    queryKey: ['alert-summary'],
    queryFn: () => api.get<AlertSummary>('/api/v1/alerts/summary'),
    refetchInterval: 30_000,
  });
  const followed = useAlertList(true, 'f', true).result;
  const others = useAlertList(false, 'o', true).result;
  const filtered = (followed.data?.total ?? 0) + (others.data?.total ?? 0);
  const types = splitList(url.get('type'));
  const states = splitList(url.get('state'));
  return (
    <Space orientation="vertical" size="middle" style={{ width: '100%' }}>
      <Card>
        <Space size={48} wrap>
          <Statistic
            title={t('alerts.followed')}
            value={summary.data ? summary.data.followed.open : '—'}
            styles={{ content: { color: '#cf1322' } }}
          />
          <Statistic title={t('alerts.others')} value={summary.data ? summary.data.others_open : '—'} />
          <div data-testid="alert-counts">
            <Typography.Text>
              {summary.data
                ? t('alerts.totalCount', {
                    open: summary.data.total_open,
                    ack: summary.data.total_acknowledged,
                  })
                : ''}
            </Typography.Text>
            <br />
            <Typography.Text type="secondary" data-testid="alert-filtered">
              {t('alerts.filteredCount', { count: filtered })}
            </Typography.Text>
          </div>
        </Space>
      </Card>
      <Card>
        <Space wrap>
          <Input.Search
            allowClear
            style={{ width: 320 }}
            placeholder={t('alerts.search')}
            value={q}
            onChange={(e) => setQ(e.target.value)}
            onSearch={(v) => url.set({ q: v.trim(), fpage: 1, opage: 1 })}
          />
          <Select
            mode="multiple"
            allowClear
            style={{ minWidth: 220 }}
            placeholder={t('alerts.type')}
            value={types}
            options={ALERT_TYPES.map((v) => ({ value: v, label: t(`alerts.types.${v}`) }))}
            onChange={(v: string[]) => url.set({ type: v.join(','), fpage: 1, opage: 1 })}
          />
          <Select
            mode="multiple"
            allowClear
            style={{ minWidth: 220 }}
            placeholder={t('alerts.state')}
            value={states}
            options={(['open', 'acknowledged', 'resolved'] as const).map((v) => ({
              value: v,
              label: t(`alerts.states.${v}`),
            }))}
            onChange={(v: string[]) => url.set({ state: v.join(','), fpage: 1, opage: 1 })}
          />
          <Button icon={<HeartOutlined />} onClick={() => setFocusOpen(true)} data-testid="focus-open">
            {t('alerts.focus')}
          </Button>
        </Space>
      </Card>
      <Card
        title={<span style={{ color: '#cf1322' }}>{t('alerts.followed')}</span>}
        data-testid="alerts-followed"
      >
        <AlertTable followed prefix="f" onAction={setAction} />
      </Card>
      <Card title={t('alerts.others')} data-testid="alerts-others">
        <AlertTable followed={false} prefix="o" onAction={setAction} />
      </Card>
      <FocusPanel open={focusOpen} onClose={() => setFocusOpen(false)} />
      <ActionModal action={action} onClose={() => setAction(null)} />
    </Space>
  );
}
