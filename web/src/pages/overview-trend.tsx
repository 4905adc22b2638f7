import { useQuery } from '@tanstack/react-query';
import { Empty, Spin } from 'antd';
import type { EChartsCoreOption } from 'echarts/core';
import { useTranslation } from 'react-i18next';
import { api } from '../api';
import { EChart } from '../echart';
import { errorText } from '../page-state';
import { daysOf, pivotSeries } from '../stats-series';
import type { StatsDaily, StatsDailySums } from '../types';

const TREND_DAYS = 14;
const GiB = 1024 ** 3;

/** The overview's chart: backups, failures and GiB stored per UTC day over the last two weeks. */
export function OverviewTrend() {
  const { t } = useTranslation();
  const from = new Date(Date.now() - (TREND_DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
  const daily = useQuery({
    queryKey: ['stats', 'overview-trend', from],
    // top=0: every business folded into one row per day, which is all the chart draws.
    queryFn: () => api.get<StatsDaily>('/api/v1/stats/daily', { by: 'business', from, top: '0' }),
  });
  if (daily.isLoading) return <Spin />;
  if (daily.error) return <Empty description={errorText(daily.error)} image={Empty.PRESENTED_IMAGE_SIMPLE} />;
  const answer = daily.data;
  if (!answer) return null;
  const days = daysOf(answer.from, answer.to);
  const total = (value: (i: StatsDailySums) => number) =>
    pivotSeries(
      [...answer.items, ...(answer.other ?? [])].map((i) => ({ at: i.day, key: 'all', value: value(i) })),
      days,
      1,
      'all',
    ).values[0] ?? days.map(() => 0);
  const option: EChartsCoreOption = {
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    grid: { left: 48, right: 48, top: 36, bottom: 24 },
    xAxis: { type: 'category', data: days.map((d) => d.slice(5, 10)) },
    yAxis: [{ type: 'value' }, { type: 'value', name: 'GiB' }],
    series: [
      { name: t('stats.backups'), type: 'bar', data: total((i) => i.backups) },
      { name: t('stats.failures'), type: 'line', color: '#cf1322', data: total((i) => i.failures) },
      {
        name: `${t('stats.stored')} (GiB)`,
        type: 'line',
        yAxisIndex: 1,
        data: total((i) => i.bytes).map((b) => Number((b / GiB).toFixed(2))),
      },
    ],
  };
  return <EChart option={option} testId="overview-trend" style={{ height: 240 }} />;
}
