import {
  DeleteOutlined,
  EditOutlined,
  HistoryOutlined,
  ImportOutlined,
  PlusOutlined,
  SearchOutlined,
} from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  App,
  Button,
  Card,
  Col,
  Form,
  Input,
  InputNumber,
  Modal,
  Popconfirm,
  Row,
  Select,
  Space,
  Statistic,
  Switch,
  Table,
  type TableColumnsType,
  Tag,
  Tooltip,
  Typography,
} from 'antd';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, PAGE_SIZES, type Page } from '../api';
import { formatTime } from '../format';
import { errorText, PageState } from '../page-state';
import { useCan } from '../session';
import type { ImportResult, Instance } from '../types';
import { useUrlState } from '../url-state';
import { BackupDrawer } from './backup-drawer';

/** The list filters: each takes a comma- or space-separated list. */
const FILTERS = ['name', 'server_id', 'type', 'instance', 'game_id'] as const;
type FilterKey = (typeof FILTERS)[number];

const PRIORITY_COLOR: Record<string, string> = {
  critical: 'red',
  high: 'orange',
  normal: 'blue',
  low: 'default',
};

function SearchRow() {
  const { t } = useTranslation();
  const url = useUrlState();
  const [form] = Form.useForm<Record<FilterKey, string>>();
  const label: Record<FilterKey, string> = {
    name: t('instances.name'),
    server_id: t('instances.serverId'),
    type: t('instances.type'),
    instance: t('instances.instance'),
    game_id: t('instances.business'),
  };
  const current = Object.fromEntries(FILTERS.map((k) => [k, url.get(k)]));
  const fromUrl = JSON.stringify(current);
  // Follow the address (back/forward, a shared link), not every re-render: typing is kept.
  useEffect(() => {
    form.setFieldsValue(JSON.parse(fromUrl) as Record<FilterKey, string>);
  }, [form, fromUrl]);
  return (
    <Form
      form={form}
      name="instance-search"
      layout="vertical"
      initialValues={current}
      onFinish={(values) => url.set({ ...values, page: 1 })}
    >
      <Row gutter={12} align="bottom">
        {FILTERS.map((k) => (
          <Col key={k} xs={24} sm={12} md={8} lg={4}>
            <Form.Item
              name={k}
              label={label[k]}
              tooltip={t('instances.listHint')}
              style={{ marginBottom: 8 }}
            >
              <Input allowClear placeholder={t('instances.listHint')} data-testid={`filter-${k}`} />
            </Form.Item>
          </Col>
        ))}
        <Col xs={24} lg={4}>
          <Space style={{ marginBottom: 8 }}>
            <Button type="primary" htmlType="submit" icon={<SearchOutlined />} data-testid="filter-search">
              {t('common.search')}
            </Button>
            <Button
              onClick={() => {
                form.resetFields();
                url.set({ ...Object.fromEntries(FILTERS.map((k) => [k, ''])), page: 1 });
              }}
            >
              {t('common.reset')}
            </Button>
          </Space>
        </Col>
      </Row>
    </Form>
  );
}

type InstanceForm = Omit<
  Instance,
  | 'id'
  | 'paused'
  | 'muted_until'
  | 'last_success_at'
  | 'last_report_at'
  | 'next_due_at'
  | 'created_at'
  | 'updated_at'
>;

function InstanceEditor(props: { editing: Instance | 'new' | null; onClose: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<InstanceForm>();
  const [error, setError] = useState<string | null>(null);
  const editing = props.editing;
  useEffect(() => {
    setError(null);
    if (editing === 'new') form.resetFields();
    else if (editing) form.setFieldsValue(editing);
  }, [editing, form]);
  const save = useMutation({
    mutationFn: (values: InstanceForm) => {
      const body = { ...values, schedule: values.schedule ? values.schedule : null };
      return editing === 'new' || editing === null
        ? api.post('/api/v1/instances', body)
        : api.patch(`/api/v1/instances/${editing.id}`, body);
    },
    onSuccess: () => {
      void message.success(t('common.saved'));
      void queryClient.invalidateQueries({ queryKey: ['instances'] });
      props.onClose();
    },
    onError: (err) => setError(errorText(err)),
  });
  const req = [{ required: true, message: t('login.required') }];
  return (
    <Modal
      title={editing === 'new' ? t('instances.add') : t('instances.edit')}
      open={editing !== null}
      onCancel={props.onClose}
      onOk={() => form.submit()}
      okButtonProps={{ loading: save.isPending }}
      width={720}
      forceRender
    >
      <Form
        form={form}
        name="instance-edit"
        layout="vertical"
        initialValues={{
          cluster: 'default',
          priority: 'normal',
          interval_seconds: 86400,
          timezone: 'UTC',
          grace_seconds: 3600,
        }}
        onFinish={(v) => save.mutate(v)}
      >
        <Row gutter={12}>
          <Col span={12}>
            <Form.Item name="name" label={t('instances.name')} rules={req}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={12}>
            <Form.Item name="game_id" label={t('instances.business')} rules={req}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="server_id" label={t('instances.serverId')} rules={req}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="type" label={t('instances.type')} rules={req}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="instance" label={t('instances.instance')} rules={req}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="cluster" label={t('instances.cluster')}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="priority" label={t('instances.priority')}>
              <Select options={['critical', 'high', 'normal', 'low'].map((v) => ({ value: v, label: v }))} />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="timezone" label={t('instances.timezone')}>
              <Input />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="schedule" label={t('instances.schedule')}>
              <Input placeholder="0 3 * * *" />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="interval_seconds" label={t('instances.intervalSeconds')}>
              <InputNumber min={60} style={{ width: '100%' }} />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="grace_seconds" label={t('instances.graceSeconds')}>
              <InputNumber min={0} style={{ width: '100%' }} />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="retention_days" label={t('instances.retentionDays')}>
              <InputNumber min={1} style={{ width: '100%' }} />
            </Form.Item>
          </Col>
          <Col span={8}>
            <Form.Item name="keep_fulls" label={t('instances.keepFulls')}>
              <InputNumber min={1} style={{ width: '100%' }} />
            </Form.Item>
          </Col>
        </Row>
        {error && <Typography.Text type="danger">{error}</Typography.Text>}
      </Form>
    </Modal>
  );
}

function ImportModal(props: { open: boolean; onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [text, setText] = useState('');
  const run = useMutation({
    mutationFn: (body: string) =>
      api.post<ImportResult>('/api/v1/instances/import', undefined, { text: body }),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['instances'] }),
  });
  const result = run.data;
  return (
    <Modal
      title={t('instances.import')}
      open={props.open}
      onCancel={() => {
        run.reset();
        props.onClose();
      }}
      width={860}
      footer={[
        <Button key="close" onClick={props.onClose}>
          {t('common.close')}
        </Button>,
        <Button
          key="run"
          type="primary"
          loading={run.isPending}
          disabled={text.trim() === ''}
          onClick={() => run.mutate(text)}
          data-testid="import-run"
        >
          {t('instances.importRun')}
        </Button>,
      ]}
    >
      <Typography.Paragraph type="secondary">{t('instances.importHint')}</Typography.Paragraph>
      <Input.TextArea
        rows={8}
        value={text}
        onChange={(e) => setText(e.target.value)}
        style={{ fontFamily: 'monospace' }}
        placeholder="mysql-5001 5001 mysql 3306 31"
        data-testid="import-text"
      />
      <div style={{ margin: '12px 0' }}>
        <Typography.Text>{t('instances.importFile')}: </Typography.Text>
        <input
          type="file"
          accept=".csv,.txt,text/plain,text/csv"
          data-testid="import-file"
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void file.text().then((content) => setText(content.replace(/,/g, ' ')));
          }}
        />
      </div>
      {run.error && <Typography.Text type="danger">{errorText(run.error)}</Typography.Text>}
      {result && (
        <div data-testid="import-result">
          <Row gutter={16} style={{ marginBottom: 12 }}>
            <Col span={8}>
              <Card size="small">
                <Statistic
                  title={t('instances.created')}
                  value={result.created}
                  styles={{ content: { color: '#389e0d' } }}
                  data-testid="import-created"
                />
              </Card>
            </Col>
            <Col span={8}>
              <Card size="small">
                <Statistic
                  title={t('instances.duplicate')}
                  value={result.duplicate}
                  styles={{ content: { color: '#d48806' } }}
                  data-testid="import-duplicate"
                />
              </Card>
            </Col>
            <Col span={8}>
              <Card size="small">
                <Statistic
                  title={t('instances.malformed')}
                  value={result.malformed}
                  styles={{ content: { color: '#cf1322' } }}
                  data-testid="import-malformed"
                />
              </Card>
            </Col>
          </Row>
          {result.lines.length > 0 && (
            <Table
              size="small"
              rowKey="line"
              title={() => t('instances.failingLines')}
              dataSource={result.lines}
              pagination={{ pageSize: 10 }}
              columns={[
                { title: t('instances.line'), dataIndex: 'line', width: 70 },
                {
                  title: t('instances.text'),
                  dataIndex: 'text',
                  render: (v: string) => <Typography.Text code>{v}</Typography.Text>,
                },
                {
                  title: t('backups.status'),
                  dataIndex: 'status',
                  width: 110,
                  render: (s: string) => (
                    <Tag color={s === 'malformed' ? 'red' : 'gold'}>{t(`instances.${s}`)}</Tag>
                  ),
                },
                { title: t('instances.reason'), dataIndex: 'message' },
              ]}
            />
          )}
        </div>
      )}
    </Modal>
  );
}

export function InstancesPage() {
  const { t } = useTranslation();
  const { message, modal } = App.useApp();
  const url = useUrlState();
  const queryClient = useQueryClient();
  const canOperate = useCan('operator');
  const [selected, setSelected] = useState<number[]>([]);
  const [editing, setEditing] = useState<Instance | 'new' | null>(null);
  const [importOpen, setImportOpen] = useState(false);
  const query = {
    ...Object.fromEntries(FILTERS.map((k) => [k, url.get(k)])),
    page: url.getNumber('page', 1),
    page_size: url.getNumber('size', 50),
  };
  const list = useQuery({
    queryKey: ['instances', query],
    queryFn: () => api.get<Page<Instance>>('/api/v1/instances', query),
    placeholderData: (prev) => prev,
  });
  const patch = useMutation({
    mutationFn: (v: { id: number; paused: boolean }) =>
      api.patch(`/api/v1/instances/${v.id}`, { paused: v.paused }),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['instances'] }),
    onError: (err) => void message.error(errorText(err)),
  });
  const remove = useMutation({
    mutationFn: (ids: number[]) =>
      ids.length === 1
        ? api.del(`/api/v1/instances/${ids[0]}`)
        : api.post('/api/v1/instances/bulk-delete', { ids }),
    onSuccess: () => {
      void message.success(t('common.deleted'));
      setSelected([]);
      void queryClient.invalidateQueries({ queryKey: ['instances'] });
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const openBackups = (i: Instance) => url.set({ backups: `${i.server_id}/${i.type}/${i.instance}` });
  const columns: TableColumnsType<Instance> = [
    {
      title: t('instances.name'),
      dataIndex: 'name',
      render: (v: string, i) => <Typography.Link onClick={() => openBackups(i)}>{v}</Typography.Link>,
    },
    { title: t('instances.serverId'), dataIndex: 'server_id' },
    { title: t('instances.type'), dataIndex: 'type' },
    { title: t('instances.instance'), dataIndex: 'instance' },
    { title: t('instances.business'), dataIndex: 'game_id' },
    { title: t('instances.cluster'), dataIndex: 'cluster' },
    {
      title: t('instances.priority'),
      dataIndex: 'priority',
      render: (p: string) => <Tag color={PRIORITY_COLOR[p]}>{p}</Tag>,
    },
    { title: t('instances.lastSuccess'), dataIndex: 'last_success_at', render: formatTime },
    { title: t('instances.nextDue'), dataIndex: 'next_due_at', render: formatTime },
    {
      title: t('instances.mutedUntil'),
      dataIndex: 'muted_until',
      render: (v: string | null) =>
        v && Date.parse(v) > Date.now() ? <Tag color="purple">{formatTime(v)}</Tag> : '—',
    },
    {
      title: t('instances.paused'),
      dataIndex: 'paused',
      width: 90,
      render: (paused: boolean, i) =>
        canOperate ? (
          <Switch
            size="small"
            checked={paused}
            data-testid={`pause-${i.id}`}
            onChange={(v) => patch.mutate({ id: i.id, paused: v })}
          />
        ) : paused ? (
          <Tag color="orange">{t('instances.paused')}</Tag>
        ) : null,
    },
    {
      title: t('common.actions'),
      key: 'actions',
      width: canOperate ? 130 : 70,
      render: (_: unknown, i) => (
        <Space size={0}>
          <Tooltip title={t('instances.showBackups')}>
            <Button
              type="text"
              icon={<HistoryOutlined />}
              onClick={() => openBackups(i)}
              data-testid={`backups-${i.id}`}
            />
          </Tooltip>
          {canOperate && (
            <>
              <Tooltip title={t('common.edit')}>
                <Button type="text" icon={<EditOutlined />} onClick={() => setEditing(i)} />
              </Tooltip>
              <Popconfirm title={t('common.confirmDelete')} onConfirm={() => remove.mutate([i.id])}>
                <Button type="text" danger icon={<DeleteOutlined />} />
              </Popconfirm>
            </>
          )}
        </Space>
      ),
    },
  ];
  const bulkDelete = () =>
    modal.confirm({
      title: t('instances.confirmBulkDelete', { count: selected.length }),
      okButtonProps: { danger: true },
      okText: t('common.delete'),
      onOk: () => remove.mutateAsync(selected),
    });
  return (
    <Space orientation="vertical" size="middle" style={{ width: '100%' }}>
      <Card>
        <SearchRow />
      </Card>
      <Card
        title={t('menu.instances')}
        extra={
          canOperate && (
            <Space>
              {selected.length > 0 && (
                <Button danger icon={<DeleteOutlined />} onClick={bulkDelete} data-testid="bulk-delete">
                  {t('instances.deleteSelected', { count: selected.length })}
                </Button>
              )}
              <Button icon={<ImportOutlined />} onClick={() => setImportOpen(true)} data-testid="import-open">
                {t('instances.import')}
              </Button>
              <Button
                type="primary"
                icon={<PlusOutlined />}
                onClick={() => setEditing('new')}
                data-testid="add-instance"
              >
                {t('instances.add')}
              </Button>
            </Space>
          )
        }
      >
        <PageState loading={false} error={list.error} onRetry={() => void list.refetch()}>
          <Table<Instance>
            data-testid="instances-table"
            rowKey="id"
            size="middle"
            loading={list.isFetching}
            columns={columns}
            dataSource={list.data?.items ?? []}
            rowSelection={
              canOperate
                ? { selectedRowKeys: selected, onChange: (keys) => setSelected(keys as number[]) }
                : undefined
            }
            scroll={{ x: 1100 }}
            pagination={{
              current: query.page,
              pageSize: query.page_size,
              total: list.data?.total ?? 0,
              pageSizeOptions: PAGE_SIZES,
              showSizeChanger: true,
              showTotal: (n) => <span data-testid="instances-total">{t('common.total', { count: n })}</span>,
              onChange: (page, size) => url.set({ page, size }),
            }}
          />
        </PageState>
      </Card>
      <InstanceEditor editing={editing} onClose={() => setEditing(null)} />
      <ImportModal open={importOpen} onClose={() => setImportOpen(false)} />
      <BackupDrawer subject={url.get('backups') || null} onClose={() => url.set({ backups: '' })} />
    </Space>
  );
}
