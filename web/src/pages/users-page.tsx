import { PlusOutlined } from '@ant-design/icons';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { App, Button, Card, Form, Input, Modal, Popconfirm, Select, Space, Switch, Table } from 'antd';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, PAGE_SIZES, type Page, type Role } from '../api';
import { formatTime } from '../format';
import { errorText, PageState } from '../page-state';
import { useSession } from '../session';
import type { User } from '../types';
import { useUrlState } from '../url-state';

const ROLES: Role[] = ['admin', 'operator', 'viewer'];

export function UsersPage() {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const { session } = useSession();
  const url = useUrlState();
  const queryClient = useQueryClient();
  const [form] = Form.useForm<{ name: string; password: string; role: Role }>();
  const [passwordFor, setPasswordFor] = useState<User | null>(null);
  const [passwordForm] = Form.useForm<{ password: string }>();
  const limit = url.getNumber('size', 50);
  const page = url.getNumber('page', 1);
  const list = useQuery({
    queryKey: ['users', page, limit],
    queryFn: () => api.get<Page<User>>('/api/v1/users', { page, page_size: limit }),
  });
  const done = () => {
    void message.success(t('common.saved'));
    void queryClient.invalidateQueries({ queryKey: ['users'] });
  };
  const create = useMutation({
    mutationFn: (v: { name: string; password: string; role: Role }) => api.post('/api/v1/users', v),
    onSuccess: () => {
      done();
      form.resetFields();
      url.set({ add: '' });
    },
    onError: (err) => form.setFields([{ name: 'name', errors: [errorText(err)] }]),
  });
  const patch = useMutation({
    mutationFn: (v: { id: number; body: { role?: Role; disabled?: boolean; password?: string } }) =>
      api.patch(`/api/v1/users/${v.id}`, v.body),
    onSuccess: () => {
      done();
      setPasswordFor(null);
      passwordForm.resetFields();
    },
    onError: (err) => void message.error(errorText(err)),
  });
  const remove = useMutation({
    mutationFn: (id: number) => api.del(`/api/v1/users/${id}`),
    onSuccess: done,
    onError: (err) => void message.error(errorText(err)),
  });
  const self = session?.user.id;
  return (
    <Card
      title={t('menu.users')}
      extra={
        <Button type="primary" icon={<PlusOutlined />} onClick={() => url.set({ add: '1' })}>
          {t('users.add')}
        </Button>
      }
    >
      <PageState loading={list.isLoading} error={list.error} onRetry={() => void list.refetch()}>
        <Table<User>
          rowKey="id"
          dataSource={list.data?.items ?? []}
          pagination={{
            current: page,
            pageSize: limit,
            total: list.data?.total ?? 0,
            pageSizeOptions: PAGE_SIZES,
            showSizeChanger: true,
            showTotal: (n) => t('common.total', { count: n }),
            onChange: (p, s) => url.set({ page: p, size: s }),
          }}
          columns={[
            { title: t('common.name'), dataIndex: 'name' },
            {
              title: t('common.role'),
              dataIndex: 'role',
              render: (role: Role, u) => (
                <Select<Role>
                  size="small"
                  value={role}
                  disabled={u.id === self}
                  style={{ width: 130 }}
                  options={ROLES.map((r) => ({ value: r, label: t(`role.${r}`) }))}
                  onChange={(r) => patch.mutate({ id: u.id, body: { role: r } })}
                />
              ),
            },
            { title: t('users.locale'), dataIndex: 'locale' },
            {
              title: t('users.disabled'),
              dataIndex: 'disabled',
              render: (disabled: boolean, u) => (
                <Switch
                  size="small"
                  checked={disabled}
                  disabled={u.id === self}
                  onChange={(v) => patch.mutate({ id: u.id, body: { disabled: v } })}
                />
              ),
            },
            { title: t('common.createdAt'), dataIndex: 'created_at', render: formatTime },
            {
              title: t('common.actions'),
              key: 'actions',
              render: (_: unknown, u) => (
                <Space>
                  <Button size="small" onClick={() => setPasswordFor(u)}>
                    {t('users.password')}
                  </Button>
                  {u.id !== self && (
                    <Popconfirm title={t('common.confirmDelete')} onConfirm={() => remove.mutate(u.id)}>
                      <Button size="small" danger>
                        {t('common.delete')}
                      </Button>
                    </Popconfirm>
                  )}
                </Space>
              ),
            },
          ]}
        />
      </PageState>
      <Modal
        title={t('users.add')}
        open={url.get('add') === '1'}
        onCancel={() => url.set({ add: '' })}
        onOk={() => form.submit()}
        okButtonProps={{ loading: create.isPending }}
        forceRender
      >
        <Form
          form={form}
          layout="vertical"
          initialValues={{ role: 'viewer' }}
          onFinish={(v) => create.mutate(v)}
        >
          <Form.Item name="name" label={t('common.name')} rules={[{ required: true }]}>
            <Input />
          </Form.Item>
          <Form.Item name="password" label={t('users.password')} rules={[{ required: true, min: 8 }]}>
            <Input.Password autoComplete="new-password" />
          </Form.Item>
          <Form.Item name="role" label={t('common.role')}>
            <Select options={ROLES.map((r) => ({ value: r, label: t(`role.${r}`) }))} />
          </Form.Item>
        </Form>
      </Modal>
      <Modal
        title={passwordFor ? `${t('users.password')}: ${passwordFor.name}` : ''}
        open={passwordFor !== null}
        onCancel={() => setPasswordFor(null)}
        onOk={() => passwordForm.submit()}
        okButtonProps={{ loading: patch.isPending }}
        forceRender
      >
        <Form
          form={passwordForm}
          layout="vertical"
          onFinish={(v) =>
            passwordFor && patch.mutate({ id: passwordFor.id, body: { password: v.password } })
          }
        >
          <Form.Item name="password" label={t('users.password')} rules={[{ required: true, min: 8 }]}>
            <Input.Password autoComplete="new-password" />
          </Form.Item>
        </Form>
      </Modal>
    </Card>
  );
}
