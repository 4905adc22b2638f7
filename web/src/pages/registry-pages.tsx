import { DeleteOutlined, EditOutlined, PlusOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  App,
  Button,
  Card,
  Form,
  Input,
  InputNumber,
  Modal,
  Popconfirm,
  Space,
  Table,
  type TableColumnsType,
} from 'antd';
import { useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, PAGE_SIZES, type Page } from '../api';
import { formatTime } from '../format';
import { errorText, PageState } from '../page-state';
import { useCan } from '../session';
import type { BackupType, Business } from '../types';
import { useUrlState } from '../url-state';

interface RegistryItem {
  id: number;
  created_at: string;
  retention_days: number | null;
  keep_fulls: number | null;
}

interface Field {
  name: string;
  label: string;
  required?: boolean;
  number?: boolean;
}

interface RegistrySpec<T extends RegistryItem> {
  path: string;
  queryKey: string;
  /** The unique key in the path: game_id or name. */
  key: keyof T & string;
  title: string;
  addLabel: string;
  fields: Field[];
  columns: TableColumnsType<T>;
}

/** Empty number fields mean "not set": null. */
function bodyOf(fields: Field[], values: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of fields) {
    const v = values[f.name];
    body[f.name] = f.number ? (v === undefined || v === '' ? null : v) : (v ?? '');
  }
  return body;
}

/** A patch without the key when it is unchanged: renaming is refused while the key is in use. */
function changedBody<T extends RegistryItem>(
  spec: RegistrySpec<T>,
  item: T,
  values: Record<string, unknown>,
) {
  const body = bodyOf(spec.fields, values);
  if (body[spec.key] === item[spec.key]) delete body[spec.key];
  return body;
}

function RegistryPage<T extends RegistryItem>({ spec }: { spec: RegistrySpec<T> }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const url = useUrlState();
  const queryClient = useQueryClient();
  const canOperate = useCan('operator');
  const canDelete = useCan('admin');
  const [form] = Form.useForm<Record<string, unknown>>();
  const editingKey = url.get('edit');
  const page = url.getNumber('page', 1);
  const size = url.getNumber('size', 50);
  const list = useQuery({
    queryKey: [spec.queryKey, page, size],
    queryFn: () => api.get<Page<T>>(spec.path, { page, page_size: size }),
    placeholderData: (prev) => prev,
  });
  const editing =
    editingKey === ''
      ? null
      : editingKey === '+'
        ? 'new'
        : (list.data?.items.find((i) => String(i[spec.key]) === editingKey) ?? null);
  useEffect(() => {
    if (editing === 'new') form.resetFields();
    else if (editing) form.setFieldsValue(editing as unknown as Record<string, unknown>);
  }, [editing, form]);
  const save = useMutation({
    mutationFn: (values: Record<string, unknown>) =>
      editing === 'new' || editing === null
        ? api.post(spec.path, bodyOf(spec.fields, values))
        : api.patch(
            `${spec.path}/${encodeURIComponent(String(editing[spec.key]))}`,
            changedBody(spec, editing, values),
          ),
    onSuccess: () => {
      void message.success(t('common.saved'));
      void queryClient.invalidateQueries({ queryKey: [spec.queryKey] });
      url.set({ edit: '' });
    },
    onError: (err) => {
      // A uniqueness error belongs under the key field; anything else under the form.
      const field = err instanceof ApiError && err.code === 'duplicate' ? spec.key : spec.fields[0]!.name;
      form.setFields([{ name: field, errors: [errorText(err)] }]);
    },
  });
  const remove = useMutation({
    mutationFn: (item: T) => api.del(`${spec.path}/${encodeURIComponent(String(item[spec.key]))}`),
    onSuccess: () => {
      void message.success(t('common.deleted'));
      void queryClient.invalidateQueries({ queryKey: [spec.queryKey] });
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const columns: TableColumnsType<T> = [
    ...spec.columns,
    {
      title: t('registry.retentionDays'),
      dataIndex: 'retention_days',
      render: (v: number | null) => v ?? '—',
    },
    { title: t('registry.keepFulls'), dataIndex: 'keep_fulls', render: (v: number | null) => v ?? '—' },
    { title: t('common.createdAt'), dataIndex: 'created_at', render: formatTime },
    ...(canOperate
      ? [
          {
            title: t('common.actions'),
            key: 'actions',
            width: 110,
            render: (_: unknown, item: T) => (
              <Space size={0}>
                <Button
                  type="text"
                  icon={<EditOutlined />}
                  onClick={() => url.set({ edit: String(item[spec.key]) })}
                />
                {canDelete && (
                  <Popconfirm title={t('common.confirmDelete')} onConfirm={() => remove.mutate(item)}>
                    <Button type="text" danger icon={<DeleteOutlined />} />
                  </Popconfirm>
                )}
              </Space>
            ),
          },
        ]
      : []),
  ];
  return (
    <Card
      title={spec.title}
      extra={
        canOperate && (
          <Button
            type="primary"
            icon={<PlusOutlined />}
            onClick={() => url.set({ edit: '+' })}
            data-testid="registry-add"
          >
            {spec.addLabel}
          </Button>
        )
      }
    >
      <PageState loading={list.isLoading} error={list.error} onRetry={() => void list.refetch()}>
        <Table<T>
          rowKey="id"
          size="middle"
          columns={columns}
          dataSource={list.data?.items ?? []}
          pagination={{
            current: page,
            pageSize: size,
            total: list.data?.total ?? 0,
            pageSizeOptions: PAGE_SIZES,
            showSizeChanger: true,
            showTotal: (n) => t('common.total', { count: n }),
            onChange: (p, s) => url.set({ page: p, size: s }),
          }}
        />
      </PageState>
      <Modal
        title={editing === 'new' ? spec.addLabel : t('common.edit')}
        open={editing !== null}
        onCancel={() => url.set({ edit: '' })}
        onOk={() => form.submit()}
        okButtonProps={{ loading: save.isPending, ...({ 'data-testid': 'registry-ok' } as object) }}
        forceRender
      >
        <Form form={form} layout="vertical" onFinish={(v) => save.mutate(v)}>
          {spec.fields.map((f) => (
            <Form.Item
              key={f.name}
              name={f.name}
              label={f.label}
              rules={f.required ? [{ required: true, message: t('login.required') }] : []}
            >
              {f.number ? (
                <InputNumber min={1} style={{ width: '100%' }} />
              ) : (
                <Input data-testid={`registry-${f.name}`} />
              )}
            </Form.Item>
          ))}
        </Form>
      </Modal>
    </Card>
  );
}

export function BusinessesPage() {
  const { t } = useTranslation();
  return (
    <RegistryPage<Business>
      spec={{
        path: '/api/v1/businesses',
        queryKey: 'businesses',
        key: 'game_id',
        title: t('menu.businesses'),
        addLabel: t('registry.addBusiness'),
        fields: [
          { name: 'game_id', label: t('registry.gameId'), required: true },
          { name: 'name', label: t('common.name'), required: true },
          { name: 'retention_days', label: t('registry.retentionDays'), number: true },
          { name: 'keep_fulls', label: t('registry.keepFulls'), number: true },
        ],
        columns: [
          { title: t('registry.gameId'), dataIndex: 'game_id' },
          { title: t('common.name'), dataIndex: 'name' },
        ],
      }}
    />
  );
}

export function BackupTypesPage() {
  const { t } = useTranslation();
  return (
    <RegistryPage<BackupType>
      spec={{
        path: '/api/v1/backup-types',
        queryKey: 'backup-types',
        key: 'name',
        title: t('menu.backupTypes'),
        addLabel: t('registry.addType'),
        fields: [
          { name: 'name', label: t('common.name'), required: true },
          { name: 'description', label: t('common.description') },
          { name: 'retention_days', label: t('registry.retentionDays'), number: true },
          { name: 'keep_fulls', label: t('registry.keepFulls'), number: true },
        ],
        columns: [
          { title: t('common.name'), dataIndex: 'name' },
          { title: t('common.description'), dataIndex: 'description' },
        ],
      }}
    />
  );
}
