import { Progress, Typography } from 'antd';
import { useTranslation } from 'react-i18next';
import { formatBytes } from './format';

/** Share used above which the capacity bar turns to the warning colour. */
export const CAPACITY_WARNING = 0.8;

export function CapacityBar({ total, free }: { total: number; free: number }) {
  const { t } = useTranslation();
  const used = Math.max(0, total - free);
  const share = total > 0 ? used / total : 0;
  return (
    <div style={{ minWidth: 180 }}>
      <Progress
        percent={Math.round(share * 1000) / 10}
        strokeColor={share > CAPACITY_WARNING ? '#fa8c16' : '#1668dc'}
        status={share > 0.95 ? 'exception' : 'normal'}
        size="small"
      />
      <Typography.Text type="secondary" style={{ fontSize: 12 }}>
        {t('clusters.usedOf', { used: formatBytes(used), total: formatBytes(total) })}
      </Typography.Text>
    </div>
  );
}
