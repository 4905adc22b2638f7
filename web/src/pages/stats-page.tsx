import { DownloadOutlined } from '@ant-design/icons';
import { useQuery } from '@tanstack/react-query';
import {
  Button,
  Card,
  Col,
  DatePicker,
  Empty,
  Input,
  Row,
  Select,
  Space,
  Statistic,
  Table,
  Typography,
} from 'antd';
import dayjs from 'dayjs';
import { PieChart } from 'echarts/charts';
import { DataZoomComponent } from 'echarts/components';
import { type EChartsCoreOption, use } from 'echarts/core';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { api, type Page } from '../api';
import { toCsv } from '../csv';
import { downloadCsv } from '../download-csv';
import { EChart } from '../echart';
import { formatBytes, formatDuration, formatTime, splitList } from '../format';
import { PageState } from '../page-state';
import { daysOf, type Pivot, pivotFolded, pivotSeries, pivotTable } from '../stats-series';
import type {
  BackupType,
  Business,
  ClusterSummary,
  StatsDaily,
  StatsDailySums,
  StatsQueue,
  StatsShare,
  StatsSlowest,
  StatsThroughput,
  StatsTopFailing,
  StatsTotals,
} from '../types';
import { useUrlState } from '../url-state';

use([PieChart, DataZoomComponent]);

const GiB = 1024 ** 3;
const TOP_KEYS = 8;

interface CsvData {
  name: string;
  header: string[];
  rows: (string | number | null)[][];
}

/** A chart or table in a card, with its loading / error / empty state and a CSV export of its data. */
function ChartCard(props: {
  title: string;
  testId: string;
  loading: boolean;
  error: unknown;
  empty: boolean;
  csv: CsvData | null;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  return (
    <Card
      title={props.title}
      data-testid={props.testId}
      extra={
        <Button
          size="small"
          icon={<DownloadOutlined />}
          disabled={!props.csv}
          data-testid={`${props.testId}-csv`}
          onClick={() => props.csv && downloadCsv(props.csv.name, toCsv(props.csv.header, props.csv.rows))}
        >
          CSV
        </Button>
      }
    >
      <PageState loading={props.loading} error={props.error}>
        {props.empty ? <Empty description={t('stats.noData')} /> : props.children}
      </PageState>
    </Card>
  );
}

const dayLabel = (iso: string) => iso.slice(0, 10);

/** A bar (stacked) or line chart of a pivot, one series per key. */
function pivotOption(pivot: Pivot, kind: 'bar' | 'line', scale = 1, unit = ''): EChartsCoreOption {
  return {
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 56, right: 16, top: 40, bottom: 56 },
    dataZoom: [{ type: 'inside' }, { type: 'slider', height: 18, bottom: 8 }],
    xAxis: { type: 'category', data: pivot.buckets.map(dayLabel) },
    yAxis: { type: 'value', name: unit },
    series: pivot.keys.map((key, k) => ({
      name: key,
      type: kind,
      stack: kind === 'bar' ? 'total' : undefined,
      showSymbol: false,
      data: (pivot.values[k] ?? []).map((v) => Number((v / scale).toFixed(3))),
    })),
  };
}

function pivotCsv(name: string, pivot: Pivot, scale = 1): CsvData {
  const table = pivotTable(pivot, 'day');
  return {
    name,
    header: table.header,
    rows: table.rows.map(([day, ...values]) => [
      dayLabel(String(day)),
      ...values.map((v) => Number((Number(v) / scale).toFixed(6))),
    ]),
  };
}

/** One statistics endpoint with the page's filters (from the URL). */
function useStats<T>(
  path: string,
  filter: Record<string, string>,
  extra: Record<string, string> = {},
  enabled = true,
) {
  return useQuery({
    queryKey: ['stats', path, filter, extra],
    queryFn: () => api.get<T>(`/api/v1/stats/${path}`, { ...filter, ...extra }),
    enabled,
  });
}

export function StatsPage() {
  const { t } = useTranslation();
  const url = useUrlState();
  const businesses = splitList(url.get('business'));
  const filter = {
    from: url.get('from'),
    to: url.get('to'),
    business: businesses.join(','),
    type: url.get('type'),
    cluster: url.get('cluster'),
    node: url.get('node'),
  };
  const other = t('stats.other');
  const totals = useStats<StatsTotals>('totals', filter);
  // Each chart asks for its top keys by what it draws; the server sums the rest per day as "other".
  const top = String(TOP_KEYS);
  const byBusiness = useStats<StatsDaily>('daily', filter, { by: 'business', top, rank: 'backups' });
  const bytesBusiness = useStats<StatsDaily>('daily', filter, { by: 'business', top, rank: 'bytes' });
  const byNode = useStats<StatsDaily>('daily', filter, { by: 'node', top, rank: 'bytes' });
  const byType = useStats<StatsDaily>(
    'daily',
    filter,
    { by: 'type', top, rank: 'backups' },
    businesses.length === 1,
  );
  const share = useStats<StatsShare>('share', filter);
  const throughput = useStats<StatsThroughput>('throughput', filter);
  const queue = useStats<StatsQueue>('queue', filter);
  const failing = useStats<StatsTopFailing>('top-failing', filter);
  const slowest = useStats<StatsSlowest>('slowest', filter);
  const businessList = useQuery({
    queryKey: ['businesses', 'all'],
    queryFn: () => api.get<Page<Business>>('/api/v1/businesses', { page_size: 1000 }),
  });
  const typeList = useQuery({
    queryKey: ['backup-types', 'all'],
    queryFn: () => api.get<Page<BackupType>>('/api/v1/backup-types', { page_size: 1000 }),
  });
  const clusterList = useQuery({
    queryKey: ['clusters', 'summary'],
    queryFn: () => api.get<{ items: ClusterSummary[] }>('/api/v1/clusters/summary'),
  });

  const days = totals.data ? daysOf(totals.data.from, totals.data.to) : [];
  const daily = (answer: StatsDaily | undefined, value: (i: StatsDailySums) => number) =>
    pivotFolded(
      (answer?.items ?? [])
        .filter((i) => i.key !== '')
        .map((i) => ({ at: i.day, key: i.key, value: value(i) })),
      (answer?.other ?? []).map((o) => ({ at: o.day, value: value(o) })),
      days,
      other,
    );
  const backupsByBusiness = daily(byBusiness.data, (i) => i.backups);
  const failuresByBusiness = daily(byBusiness.data, (i) => i.failures);
  const bytesByBusiness = daily(bytesBusiness.data, (i) => i.bytes);
  const bytesByNode = daily(byNode.data, (i) => i.bytes);
  const backupsByType = daily(byType.data, (i) => i.backups);
  const rateByNode = pivotSeries(
    (throughput.data?.items ?? []).map((i) => ({
      at: i.day,
      key: i.node,
      value: (i.bytes_per_second ?? 0) / 1e6,
    })),
    days,
    TOP_KEYS,
    other,
  );
  const failuresTotal = failuresByBusiness.values.reduce(
    (sum, series) => sum.map((v, i) => v + (series[i] ?? 0)),
    days.map(() => 0),
  );
  const backupsOption = pivotOption(backupsByBusiness, 'bar');
  (backupsOption.series as object[]).push({
    name: t('stats.failures'),
    type: 'line',
    color: '#cf1322',
    data: failuresTotal,
  });

  const queueClusters = queue.data?.clusters ?? [];
  const queueOption: EChartsCoreOption = {
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 56, right: 56, top: 40, bottom: 56 },
    dataZoom: [{ type: 'inside' }, { type: 'slider', height: 18, bottom: 8 }],
    xAxis: { type: 'time' },
    yAxis: [
      { type: 'value', name: t('stats.depth') },
      { type: 'value', name: t('stats.enqueuedPerMinute') },
    ],
    series: queueClusters.flatMap((c) => [
      {
        name: `${c.cluster} · ${t('stats.depth')}`,
        type: 'line',
        showSymbol: false,
        data: c.minutes.map((m) => [m.minute, m.depth]),
      },
      {
        name: `${c.cluster} · ${t('stats.enqueuedPerMinute')}`,
        type: 'bar',
        yAxisIndex: 1,
        barMaxWidth: 6,
        data: c.minutes.map((m) => [m.minute, m.enqueued]),
      },
    ]),
  };
  const shareItems = share.data?.items ?? [];
  const shareOption: EChartsCoreOption = {
    tooltip: { trigger: 'item', formatter: '{b}: {d}%' },
    legend: { type: 'scroll', orient: 'vertical', right: 0, top: 0 },
    series: [
      {
        type: 'pie',
        radius: ['35%', '70%'],
        center: ['40%', '50%'],
        data: shareItems.map((i) => ({ name: i.game_id, value: i.bytes })),
      },
    ],
  };

  return (
    <Space orientation="vertical" size={16} style={{ width: '100%' }}>
      <Card>
        <Space wrap>
          <DatePicker.RangePicker
            data-testid="stats-range"
            value={filter.from && filter.to ? [dayjs(filter.from), dayjs(filter.to)] : null}
            onChange={(range) =>
              url.set({
                from: range?.[0]?.format('YYYY-MM-DD') ?? '',
                to: range?.[1]?.format('YYYY-MM-DD') ?? '',
              })
            }
          />
          <Select
            mode="multiple"
            allowClear
            style={{ minWidth: 240 }}
            placeholder={t('stats.business')}
            data-testid="stats-business"
            value={businesses}
            onChange={(v: string[]) => url.set({ business: v.join(',') })}
            options={(businessList.data?.items ?? []).map((b) => ({
              value: b.game_id,
              label: `${b.game_id} ${b.name}`,
            }))}
          />
          <Select
            allowClear
            style={{ minWidth: 140 }}
            placeholder={t('stats.type')}
            value={filter.type || undefined}
            onChange={(v: string | undefined) => url.set({ type: v ?? '' })}
            options={(typeList.data?.items ?? []).map((b) => ({ value: b.name, label: b.name }))}
          />
          <Select
            allowClear
            style={{ minWidth: 140 }}
            placeholder={t('stats.cluster')}
            value={filter.cluster || undefined}
            onChange={(v: string | undefined) => url.set({ cluster: v ?? '' })}
            options={(clusterList.data?.items ?? []).map((c) => ({ value: c.name, label: c.name }))}
          />
          <Input.Search
            allowClear
            style={{ width: 180 }}
            placeholder={t('stats.node')}
            defaultValue={filter.node}
            onSearch={(v) => url.set({ node: v.trim() })}
          />
          <Typography.Text type="secondary">{t('stats.utcDays')}</Typography.Text>
        </Space>
      </Card>

      <PageState loading={totals.isLoading} error={totals.error} onRetry={() => void totals.refetch()}>
        <Row gutter={[16, 16]} data-testid="stats-totals">
          {[
            { key: 'backups', title: t('stats.backups'), value: String(totals.data?.backups ?? 0) },
            { key: 'failures', title: t('stats.failures'), value: String(totals.data?.failures ?? 0) },
            { key: 'bytes', title: t('stats.stored'), value: formatBytes(totals.data?.bytes ?? 0) },
            { key: 'transfers', title: t('stats.transfers'), value: String(totals.data?.transfers ?? 0) },
            {
              key: 'rate',
              title: t('stats.averageRate'),
              value:
                totals.data && totals.data.transfer_seconds > 0
                  ? `${formatBytes(totals.data.bytes / totals.data.transfer_seconds)}/s`
                  : '—',
            },
            {
              key: 'deleted',
              title: t('stats.deleted'),
              value: formatBytes(totals.data?.deleted_bytes ?? 0),
            },
          ].map((tile) => (
            <Col key={tile.key} xs={12} md={8} xl={4}>
              <Card data-testid={`stats-total-${tile.key}`}>
                <Statistic title={tile.title} value={tile.value} />
              </Card>
            </Col>
          ))}
        </Row>
      </PageState>

      <Row gutter={[16, 16]}>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.backupsByBusiness')}
            testId="chart-backups-business"
            loading={byBusiness.isLoading}
            error={byBusiness.error}
            empty={backupsByBusiness.keys.length === 0}
            csv={byBusiness.data ? pivotCsv('backups-by-business.csv', backupsByBusiness) : null}
          >
            <EChart option={backupsOption} />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.bytesByBusiness')}
            testId="chart-bytes-business"
            loading={bytesBusiness.isLoading}
            error={bytesBusiness.error}
            empty={bytesByBusiness.keys.length === 0}
            csv={bytesBusiness.data ? pivotCsv('gib-by-business.csv', bytesByBusiness, GiB) : null}
          >
            <EChart option={pivotOption(bytesByBusiness, 'line', GiB, 'GiB')} />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.bytesByNode')}
            testId="chart-bytes-node"
            loading={byNode.isLoading}
            error={byNode.error}
            empty={bytesByNode.keys.length === 0}
            csv={byNode.data ? pivotCsv('gib-by-node.csv', bytesByNode, GiB) : null}
          >
            <EChart option={pivotOption(bytesByNode, 'bar', GiB, 'GiB')} />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.share')}
            testId="chart-share"
            loading={share.isLoading}
            error={share.error}
            empty={shareItems.every((i) => i.bytes === 0)}
            csv={
              share.data
                ? {
                    name: 'share-by-business.csv',
                    header: ['game_id', 'backups', 'bytes', 'backups_share', 'bytes_share'],
                    rows: shareItems.map((i) => [
                      i.game_id,
                      i.backups,
                      i.bytes,
                      i.backups_share,
                      i.bytes_share,
                    ]),
                  }
                : null
            }
          >
            <EChart option={shareOption} />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={
              businesses.length === 1 ? t('stats.byTypeOf', { business: businesses[0] }) : t('stats.byType')
            }
            testId="chart-type"
            loading={byType.isLoading && businesses.length === 1}
            error={byType.error}
            empty={businesses.length !== 1 || backupsByType.keys.length === 0}
            csv={
              byType.data && businesses.length === 1 ? pivotCsv('backups-by-type.csv', backupsByType) : null
            }
          >
            <EChart option={pivotOption(backupsByType, 'bar')} />
          </ChartCard>
          {businesses.length !== 1 && (
            <Typography.Text type="secondary">{t('stats.pickOneBusiness')}</Typography.Text>
          )}
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.throughput')}
            testId="chart-throughput"
            loading={throughput.isLoading}
            error={throughput.error}
            empty={rateByNode.keys.length === 0}
            csv={throughput.data ? pivotCsv('mb-per-second-by-node.csv', rateByNode) : null}
          >
            <EChart option={pivotOption(rateByNode, 'line', 1, 'MB/s')} />
          </ChartCard>
        </Col>
        <Col xs={24}>
          <ChartCard
            title={t('stats.queue')}
            testId="chart-queue"
            loading={queue.isLoading}
            error={queue.error}
            empty={queueClusters.length === 0}
            csv={
              queue.data
                ? {
                    name: 'queue-by-minute.csv',
                    header: ['cluster', 'minute', 'enqueued', 'done', 'dead', 'depth'],
                    rows: queueClusters.flatMap((c) =>
                      c.minutes.map((m) => [c.cluster, m.minute, m.enqueued, m.done, m.dead, m.depth]),
                    ),
                  }
                : null
            }
          >
            <Typography.Paragraph type="secondary">
              {queueClusters
                .map((c) => t('stats.depthNow', { cluster: c.cluster, depth: c.depth }))
                .join(' · ')}
            </Typography.Paragraph>
            <EChart option={queueOption} />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.topFailing')}
            testId="table-top-failing"
            loading={failing.isLoading}
            error={failing.error}
            empty={(failing.data?.items.length ?? 0) === 0}
            csv={
              failing.data
                ? {
                    name: 'top-failing-instances.csv',
                    header: ['game_id', 'server_id', 'type', 'instance', 'failures', 'last_failure_at'],
                    rows: failing.data.items.map((i) => [
                      i.game_id,
                      i.server_id,
                      i.type,
                      i.instance,
                      i.failures,
                      i.last_failure_at,
                    ]),
                  }
                : null
            }
          >
            <Table
              size="small"
              rowKey={(i) => `${i.server_id}/${i.type}/${i.instance}`}
              pagination={false}
              dataSource={failing.data?.items ?? []}
              columns={[
                {
                  title: t('alerts.subject'),
                  key: 'subject',
                  render: (_: unknown, i) => `${i.server_id}/${i.type}/${i.instance}`,
                },
                { title: t('stats.business'), dataIndex: 'game_id' },
                { title: t('stats.failures'), dataIndex: 'failures', align: 'right' },
                { title: t('stats.lastFailure'), dataIndex: 'last_failure_at', render: formatTime },
              ]}
            />
          </ChartCard>
        </Col>
        <Col xs={24} xl={12}>
          <ChartCard
            title={t('stats.slowest')}
            testId="table-slowest"
            loading={slowest.isLoading}
            error={slowest.error}
            empty={(slowest.data?.items.length ?? 0) === 0}
            csv={
              slowest.data
                ? {
                    name: 'slowest-transfers.csv',
                    header: [
                      'job_id',
                      'server_id',
                      'type',
                      'instance',
                      'node',
                      'size',
                      'transfer_seconds',
                      'finished_at',
                    ],
                    rows: slowest.data.items.map((i) => [
                      i.job_id,
                      i.server_id,
                      i.type,
                      i.instance,
                      i.node,
                      i.size,
                      i.transfer_seconds,
                      i.finished_at,
                    ]),
                  }
                : null
            }
          >
            <Table
              size="small"
              rowKey="job_id"
              pagination={false}
              dataSource={slowest.data?.items ?? []}
              columns={[
                {
                  title: t('alerts.subject'),
                  key: 'subject',
                  render: (_: unknown, i) => `${i.server_id}/${i.type}/${i.instance}`,
                },
                { title: t('stats.node'), dataIndex: 'node' },
                { title: t('backups.size'), dataIndex: 'size', align: 'right', render: formatBytes },
                {
                  title: t('stats.duration'),
                  dataIndex: 'transfer_seconds',
                  align: 'right',
                  render: (s: number) => formatDuration(s),
                },
                { title: t('stats.finished'), dataIndex: 'finished_at', render: formatTime },
              ]}
            />
          </ChartCard>
        </Col>
      </Row>
    </Space>
  );
}
