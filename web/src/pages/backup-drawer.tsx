import { RollbackOutlined } from '@ant-design/icons';
import { useQuery } from '@tanstack/react-query';
import { Button, Drawer, Modal, Space, Table, type TableColumnsType, Tag, Typography } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../api';
import { formatBytes, formatTime } from '../format';
import { CopyButton, PageState } from '../page-state';
import type { Backup } from '../types';

/** How many backups the drawer lists, as the old list did. */
export const BACKUP_LIST_LIMIT = 480;

/** The `ubackup restore` command for one backup, exactly as docs/operations.md gives it. */
export function restoreCommand(
  origin: string,
  b: Pick<Backup, 'server_id' | 'type' | 'instance' | 'backup_time'>,
) {
  return `ubackup restore --server ${origin} --token <YOUR_TOKEN> --server-id ${b.server_id} --type ${b.type} --instance ${b.instance} --at ${b.backup_time}`;
}

/** Alternating shades for each full and the incrementals built on it. */
function chainShades(items: Backup[]): Map<number, number> {
  const shade = new Map<number, number>();
  const chainOf = (b: Backup) => b.full_time ?? b.backup_time;
  let current: string | null = null;
  let index = -1;
  for (const b of items) {
    const chain = chainOf(b);
    if (chain !== current) {
      current = chain;
      index += 1;
    }
    shade.set(b.id, index % 2);
  }
  return shade;
}

export function BackupDrawer(props: { subject: string | null; onClose: () => void }) {
  const { t } = useTranslation();
  const [restore, setRestore] = useState<Backup | null>(null);
  const [log, setLog] = useState<Backup | null>(null);
  const parts = props.subject?.split('/') ?? [];
  const identity =
    parts.length === 3 ? { server_id: parts[0]!, type: parts[1]!, instance: parts[2]! } : undefined;
  const list = useQuery({
    queryKey: ['backups', identity],
    queryFn: () => api.get<{ items: Backup[] }>('/api/v1/backups', { ...identity, limit: BACKUP_LIST_LIMIT }),
    enabled: identity !== undefined,
  });
  const items = list.data?.items ?? [];
  const shades = chainShades(items);
  const columns: TableColumnsType<Backup> = [
    {
      title: t('backups.status'),
      dataIndex: 'status',
      width: 80,
      fixed: 'left',
      render: (s: string, b) => (
        <Space size={2} orientation="vertical">
          <Tag color={s === 'ok' ? 'green' : 'red'}>{t(`backups.statuses.${s}`)}</Tag>
          {b.legality === 'illegal' && (
            <Tag color="magenta" title={b.illegal_reason ?? undefined}>
              {t('backups.illegal')}
            </Tag>
          )}
          {b.permanent && <Tag color="purple">{t('backups.permanent')}</Tag>}
        </Space>
      ),
    },
    {
      title: t('backups.kind'),
      dataIndex: 'kind',
      width: 140,
      render: (k: Backup['kind']) =>
        k ? (
          <Tag
            color={k === 'incremental' ? 'geekblue' : 'blue'}
            style={k === 'incremental' ? { marginLeft: 12 } : {}}
          >
            {k === 'incremental' ? '↳ ' : ''}
            {t(`backups.kinds.${k}`)}
          </Tag>
        ) : (
          '—'
        ),
    },
    { title: t('backups.backupTime'), dataIndex: 'backup_time', width: 170, render: formatTime },
    { title: t('backups.storedTime'), dataIndex: 'stored_time', width: 170, render: formatTime },
    {
      title: t('backups.node'),
      dataIndex: 'storage_node',
      width: 110,
      render: (v: string | null) => v ?? '—',
    },
    { title: t('backups.hostIp'), dataIndex: 'host_ip', width: 120 },
    {
      title: t('backups.fileName'),
      dataIndex: 'file_name',
      width: 220,
      render: (v: string | null) => (
        <Typography.Text style={{ wordBreak: 'break-all' }}>{v ?? '—'}</Typography.Text>
      ),
    },
    { title: t('backups.size'), dataIndex: 'size', width: 100, align: 'right', render: formatBytes },
    {
      title: t('backups.fullName'),
      dataIndex: 'full_name',
      width: 200,
      render: (v: string | null) => (
        <Typography.Text style={{ wordBreak: 'break-all' }}>{v ?? '—'}</Typography.Text>
      ),
    },
    {
      title: t('backups.blake3'),
      dataIndex: 'blake3',
      width: 130,
      render: (v: string | null) =>
        v ? (
          <Typography.Text code copyable={{ text: v }} title={v}>
            {v.slice(0, 10)}…
          </Typography.Text>
        ) : (
          '—'
        ),
    },
    {
      title: t('backups.verified'),
      key: 'verified',
      width: 170,
      render: (_: unknown, b) =>
        b.deleted_at ? (
          <Tag>{t('backups.deleted', { at: formatTime(b.deleted_at) })}</Tag>
        ) : b.scrub_error ? (
          <Tag color="red" title={b.scrub_error}>
            {t('backups.damaged')}
          </Tag>
        ) : (
          formatTime(b.verified_at)
        ),
    },
    {
      title: t('backups.log'),
      key: 'log',
      width: 80,
      render: (_: unknown, b) =>
        b.log || b.error ? (
          <Button size="small" type="link" onClick={() => setLog(b)}>
            {t('backups.log')}
          </Button>
        ) : (
          '—'
        ),
    },
    {
      title: t('backups.restore'),
      key: 'restore',
      width: 100,
      fixed: 'right',
      render: (_: unknown, b) =>
        b.status === 'ok' ? (
          <Button
            size="small"
            icon={<RollbackOutlined />}
            data-testid={`restore-${b.id}`}
            onClick={() => setRestore(b)}
          >
            {t('backups.restore')}
          </Button>
        ) : null,
    },
  ];
  const command = restore ? restoreCommand(window.location.origin, restore) : '';
  return (
    <Drawer
      title={t('backups.title', { subject: props.subject ?? '' })}
      open={props.subject !== null}
      onClose={props.onClose}
      size="90%"
      destroyOnHidden
    >
      <PageState
        loading={list.isLoading}
        error={list.error}
        empty={items.length === 0}
        onRetry={() => void list.refetch()}
      >
        <Typography.Paragraph type="secondary">
          {t('backups.latest', { count: items.length })}
        </Typography.Paragraph>
        <Table<Backup>
          data-testid="backup-table"
          rowKey="id"
          size="small"
          columns={columns}
          dataSource={items}
          scroll={{ x: 1900 }}
          pagination={{ pageSize: 50, showSizeChanger: false }}
          onRow={(b) => ({ style: { background: shades.get(b.id) === 1 ? '#f0f5ff' : undefined } })}
        />
      </PageState>
      <Modal
        title={t('backups.restoreTitle')}
        open={restore !== null}
        onCancel={() => setRestore(null)}
        footer={[
          <CopyButton key="copy" text={command} testId="copy-restore" />,
          <Button key="close" onClick={() => setRestore(null)}>
            {t('common.close')}
          </Button>,
        ]}
        width={760}
      >
        <Typography.Paragraph type="secondary">{t('backups.restoreHint')}</Typography.Paragraph>
        <pre
          data-testid="restore-command"
          style={{
            whiteSpace: 'pre-wrap',
            wordBreak: 'break-all',
            background: '#0b1021',
            color: '#e6edf3',
            padding: 16,
            borderRadius: 6,
          }}
        >
          {command}
        </pre>
      </Modal>
      <Modal
        title={t('backups.log')}
        open={log !== null}
        onCancel={() => setLog(null)}
        footer={null}
        width={760}
      >
        {log?.error && <Typography.Paragraph type="danger">{log.error}</Typography.Paragraph>}
        <pre style={{ whiteSpace: 'pre-wrap', maxHeight: 480, overflow: 'auto' }}>{log?.log}</pre>
      </Modal>
    </Drawer>
  );
}
