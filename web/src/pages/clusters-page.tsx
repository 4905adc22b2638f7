import { PauseCircleOutlined, PlayCircleOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, InputNumber, Space, Table, type TableColumnsType, Tag, Typography } from 'antd';
import { useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../api';
import { CapacityBar } from '../capacity-bar';
import { formatBytes, formatTime } from '../format';
import { errorText, PageState } from '../page-state';
import { useCan } from '../session';
import type { ClusterSummary, NodeView } from '../types';
import { useUrlState } from '../url-state';

const STATE_COLOR: Record<string, string> = {
  active: 'green',
  paused_reserve: 'orange',
  paused_admin: 'gold',
  offline: 'red',
  new: 'blue',
};
const PRIORITY_COLOR = { critical: 'red', high: 'orange', normal: 'blue', low: 'default' } as const;

/** A number edited in place: saved on Enter or when the field loses focus. */
function InlineNumber(props: {
  value: number;
  min: number;
  max?: number;
  testId: string;
  onSave: (v: number) => void;
}) {
  const [value, setValue] = useState<number | null>(props.value);
  const saved = useRef(props.value);
  const commit = () => {
    if (value === null || value === saved.current) return;
    saved.current = value;
    props.onSave(value);
  };
  return (
    <span data-testid={props.testId}>
      <InputNumber
        size="small"
        min={props.min}
        max={props.max}
        value={value}
        onChange={setValue}
        onPressEnter={commit}
        onBlur={commit}
        style={{ width: 96 }}
      />
    </span>
  );
}

export function ClustersPage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const url = useUrlState();
  const queryClient = useQueryClient();
  const canOperate = useCan('operator');
  const clusters = useQuery({
    queryKey: ['clusters-summary'],
    queryFn: () => api.get<{ items: ClusterSummary[] }>('/api/v1/clusters/summary'),
    refetchInterval: 30_000,
  });
  const nodes = useQuery({
    queryKey: ['nodes'],
    queryFn: () => api.get<{ items: NodeView[] }>('/api/v1/nodes'),
    refetchInterval: 15_000,
  });
  const patch = useMutation({
    mutationFn: (v: {
      id: number;
      body: Partial<Pick<NodeView, 'weight' | 'max_bandwidth' | 'paused_by_admin'>>;
    }) => api.patch(`/api/v1/nodes/${v.id}`, v.body),
    onSuccess: () => {
      void message.success(t('common.saved'));
      void queryClient.invalidateQueries({ queryKey: ['nodes'] });
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const clusterFilter = url.get('cluster');
  const nodeItems = (nodes.data?.items ?? []).filter(
    (n) => clusterFilter === '' || n.cluster === clusterFilter,
  );
  const clusterColumns: TableColumnsType<ClusterSummary> = [
    {
      title: t('common.name'),
      dataIndex: 'name',
      render: (name: string, c) => (
        <div>
          <Typography.Link strong onClick={() => url.set({ cluster: clusterFilter === name ? '' : name })}>
            {name}
          </Typography.Link>
          {c.description && (
            <div>
              <Typography.Text type="secondary">{c.description}</Typography.Text>
            </div>
          )}
        </div>
      ),
    },
    { title: t('clusters.nodeCount'), dataIndex: 'node_count', width: 90 },
    {
      title: t('clusters.queue'),
      key: 'queue',
      render: (_: unknown, c) => (
        <Space size={4} wrap>
          {(['critical', 'high', 'normal', 'low'] as const).map((p) => (
            <Tag key={p} color={c.queue[p] > 0 ? PRIORITY_COLOR[p] : 'default'}>
              {t(`clusters.priorities.${p}`)} {c.queue[p]}
            </Tag>
          ))}
        </Space>
      ),
    },
    { title: t('clusters.oldest'), dataIndex: 'oldest_queued_at', width: 170, render: formatTime },
    {
      title: t('clusters.capacity'),
      key: 'capacity',
      width: 240,
      render: (_: unknown, c) => <CapacityBar total={c.total_bytes} free={c.free_bytes} />,
    },
  ];
  const nodeColumns: TableColumnsType<NodeView> = [
    {
      title: t('common.name'),
      dataIndex: 'name',
      fixed: 'left',
      render: (v: string) => (
        <Typography.Text strong style={{ whiteSpace: 'nowrap' }}>
          {v}
        </Typography.Text>
      ),
    },
    { title: t('instances.cluster'), dataIndex: 'cluster' },
    { title: t('clusters.address'), dataIndex: 'address', render: (v: string | null) => v ?? '—' },
    {
      title: t('clusters.state'),
      dataIndex: 'state',
      render: (s: string) => (
        <Tag color={STATE_COLOR[s] ?? 'default'}>{t(`clusters.states.${s}`, { defaultValue: s })}</Tag>
      ),
    },
    {
      title: t('clusters.free'),
      key: 'free',
      render: (_: unknown, n) => `${formatBytes(n.disk_free_bytes)} / ${formatBytes(n.reserve_bytes)}`,
    },
    { title: t('clusters.inFlight'), dataIndex: 'in_flight', width: 80 },
    {
      title: t('clusters.rate'),
      dataIndex: 'bytes_per_second',
      render: (v: number) => `${formatBytes(v)}/s`,
    },
    {
      title: t('clusters.weight'),
      dataIndex: 'weight',
      render: (v: number, n) =>
        canOperate ? (
          <InlineNumber
            key={`w${n.id}-${v}`}
            value={v}
            min={1}
            max={256}
            testId={`weight-${n.name}`}
            onSave={(weight) => patch.mutate({ id: n.id, body: { weight } })}
          />
        ) : (
          v
        ),
    },
    {
      title: t('clusters.maxBandwidth'),
      dataIndex: 'max_bandwidth',
      render: (v: number, n) =>
        canOperate ? (
          <InlineNumber
            key={`b${n.id}-${v}`}
            value={v}
            min={0}
            testId={`bandwidth-${n.name}`}
            onSave={(max_bandwidth) => patch.mutate({ id: n.id, body: { max_bandwidth } })}
          />
        ) : v === 0 ? (
          '∞'
        ) : (
          `${formatBytes(v)}/s`
        ),
    },
    { title: t('clusters.lastHeartbeat'), dataIndex: 'last_heartbeat_at', render: formatTime },
    ...(canOperate
      ? [
          {
            title: t('common.actions'),
            key: 'actions',
            render: (_: unknown, n: NodeView) => (
              <Button
                size="small"
                data-testid={`pause-node-${n.name}`}
                icon={n.paused_by_admin ? <PlayCircleOutlined /> : <PauseCircleOutlined />}
                onClick={() => patch.mutate({ id: n.id, body: { paused_by_admin: !n.paused_by_admin } })}
              >
                {n.paused_by_admin ? t('clusters.resume') : t('clusters.pause')}
              </Button>
            ),
          },
        ]
      : []),
  ];
  return (
    <Space orientation="vertical" size="middle" style={{ width: '100%' }}>
      <Card title={t('clusters.clusters')}>
        <PageState
          loading={clusters.isLoading}
          error={clusters.error}
          onRetry={() => void clusters.refetch()}
          empty={clusters.data?.items.length === 0}
        >
          <Table<ClusterSummary>
            rowKey="id"
            size="middle"
            columns={clusterColumns}
            dataSource={clusters.data?.items ?? []}
            pagination={false}
            scroll={{ x: 900 }}
          />
        </PageState>
      </Card>
      <Card
        title={t('clusters.nodes')}
        extra={
          clusterFilter && (
            <Tag closable onClose={() => url.set({ cluster: '' })}>
              {clusterFilter}
            </Tag>
          )
        }
      >
        <PageState
          loading={nodes.isLoading}
          error={nodes.error}
          onRetry={() => void nodes.refetch()}
          empty={nodeItems.length === 0}
        >
          <Table<NodeView>
            data-testid="nodes-table"
            rowKey="id"
            size="middle"
            columns={nodeColumns}
            dataSource={nodeItems}
            pagination={false}
            scroll={{ x: 'max-content' }}
          />
        </PageState>
      </Card>
    </Space>
  );
}
