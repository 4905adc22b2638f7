import {
  AlertOutlined,
  CloseCircleOutlined,
  CloudUploadOutlined,
  DatabaseOutlined,
  HddOutlined,
  HourglassOutlined,
  LineChartOutlined,
} from '@ant-design/icons';
import { useQuery } from '@tanstack/react-query';
import { Card, Col, Empty, Row, Space, Spin, Statistic, Table, Tag, Typography } from 'antd';
import { lazy, type ReactNode, Suspense } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api } from '../api';
import { CapacityBar } from '../capacity-bar';
import { displayZone, formatBytes, formatDuration, formatTime } from '../format';
import { PageState } from '../page-state';
import type { Overview } from '../types';

// ECharts loads after the tiles: the first page stays light.
const OverviewTrend = lazy(() => import('./overview-trend').then((m) => ({ default: m.OverviewTrend })));

function Tile(props: {
  title: string;
  value: ReactNode;
  icon: ReactNode;
  color: string;
  extra?: ReactNode;
  testId: string;
}) {
  return (
    <Card style={{ height: '100%' }}>
      <Space align="start" size={16}>
        <div
          style={{
            width: 44,
            height: 44,
            borderRadius: 10,
            background: `${props.color}1a`,
            color: props.color,
            display: 'flex',
            alignItems: 'center',
            justifyContent: 'center',
            fontSize: 22,
          }}
        >
          {props.icon}
        </div>
        <div data-testid={props.testId}>
          <Statistic title={props.title} value={props.value as string} />
          {props.extra && <Typography.Text type="secondary">{props.extra}</Typography.Text>}
        </div>
      </Space>
    </Card>
  );
}

export function OverviewPage() {
  const { t } = useTranslation();
  const overview = useQuery({
    queryKey: ['overview'],
    queryFn: () => api.get<Overview>('/api/v1/overview', { tz: displayZone() }),
    refetchInterval: 30_000,
  });
  const o = overview.data;
  const total = o?.clusters.reduce((n, c) => n + c.total_bytes, 0) ?? 0;
  const free = o?.clusters.reduce((n, c) => n + c.free_bytes, 0) ?? 0;
  return (
    <PageState loading={overview.isLoading} error={overview.error} onRetry={() => void overview.refetch()}>
      {o && (
        <Space orientation="vertical" size="middle" style={{ width: '100%' }}>
          <Row gutter={[16, 16]}>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Tile
                testId="kpi-backups"
                title={t('overview.backupsToday')}
                value={o.backups_today}
                icon={<DatabaseOutlined />}
                color="#1668dc"
              />
            </Col>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Tile
                testId="kpi-bytes"
                title={t('overview.bytesToday')}
                value={formatBytes(o.bytes_today)}
                icon={<CloudUploadOutlined />}
                color="#13a8a8"
              />
            </Col>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Tile
                testId="kpi-failures"
                title={t('overview.failuresToday')}
                value={o.failures_today}
                icon={<CloseCircleOutlined />}
                color="#cf1322"
              />
            </Col>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Link to="/alerts">
                <Tile
                  testId="kpi-alerts"
                  title={t('overview.openAlerts')}
                  value={o.open_alerts}
                  icon={<AlertOutlined />}
                  color="#fa8c16"
                />
              </Link>
            </Col>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Tile
                testId="kpi-queue"
                title={t('overview.queue')}
                value={o.queue.depth}
                icon={<HourglassOutlined />}
                color="#722ed1"
                extra={
                  o.queue.oldest_wait_seconds !== null
                    ? t('overview.oldestWait', { wait: formatDuration(o.queue.oldest_wait_seconds) })
                    : undefined
                }
              />
            </Col>
            <Col xs={24} sm={12} lg={8} xxl={4}>
              <Tile
                testId="kpi-free"
                title={t('overview.freeSpace')}
                value={formatBytes(free)}
                icon={<HddOutlined />}
                color="#389e0d"
              />
            </Col>
          </Row>
          <Row gutter={[16, 16]}>
            <Col xs={24} xl={16}>
              <Card
                title={
                  <>
                    <LineChartOutlined /> {t('overview.charts')}{' '}
                    <Link to="/stats">{t('overview.moreStats')}</Link>
                  </>
                }
                style={{ height: '100%' }}
              >
                <Suspense fallback={<Spin />}>
                  <OverviewTrend />
                </Suspense>
              </Card>
            </Col>
            <Col xs={24} xl={8}>
              <Card title={t('overview.freeSpace')} style={{ height: '100%' }}>
                {o.clusters.length === 0 ? (
                  <Empty />
                ) : (
                  <Space orientation="vertical" style={{ width: '100%' }}>
                    {o.clusters.map((c) => (
                      <div key={c.id}>
                        <Typography.Text strong>{c.name}</Typography.Text>
                        <CapacityBar total={c.total_bytes} free={c.free_bytes} />
                      </div>
                    ))}
                    {o.clusters.length > 1 && <CapacityBar total={total} free={free} />}
                  </Space>
                )}
              </Card>
            </Col>
          </Row>
          <Card
            title={t('overview.latest')}
            extra={
              <Typography.Text type="secondary">
                {t('overview.since', { since: formatTime(o.since) })}
              </Typography.Text>
            }
          >
            <Table
              rowKey="id"
              size="small"
              dataSource={o.latest}
              pagination={false}
              scroll={{ x: 900 }}
              columns={[
                {
                  title: t('backups.status'),
                  dataIndex: 'status',
                  width: 80,
                  render: (s: string) => <Tag color={s === 'ok' ? 'green' : 'red'}>{s}</Tag>,
                },
                {
                  title: t('alerts.subject'),
                  key: 'subject',
                  render: (_: unknown, b) => {
                    const subject = `${b.server_id}/${b.type}/${b.instance}`;
                    return (
                      <Link
                        to={`/instances?server_id=${encodeURIComponent(b.server_id)}&backups=${encodeURIComponent(subject)}`}
                      >
                        {subject}
                      </Link>
                    );
                  },
                },
                { title: t('instances.business'), dataIndex: 'game_id', width: 90 },
                { title: t('backups.hostIp'), dataIndex: 'host_ip', width: 130 },
                {
                  title: t('backups.fileName'),
                  dataIndex: 'filename',
                  render: (v: string | null) => v ?? '—',
                },
                {
                  title: t('backups.size'),
                  dataIndex: 'size',
                  width: 100,
                  align: 'right',
                  render: formatBytes,
                },
                { title: t('backups.backupTime'), dataIndex: 'created_at', width: 170, render: formatTime },
              ]}
            />
          </Card>
        </Space>
      )}
    </PageState>
  );
}
