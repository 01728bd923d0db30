// JSON Schema (TypeBox) of the validated DomainConfig: what `create -n` prints and
// what the API accepts. The type assertion at the bottom fails to compile if this
// schema and src/config/types.ts drift apart.

import Type, { type Static, type TSchema } from 'typebox';
import type { DomainConfig } from './types.ts';

const Action = Type.Union([
  Type.Literal('destroy'),
  Type.Literal('restart'),
  Type.Literal('preserve'),
  Type.Literal('rename-restart'),
  Type.Literal('coredump-destroy'),
  Type.Literal('coredump-restart'),
]);

/** One disk limit: QEMU takes 1..1e15 (0 = none is written by leaving the key out). */
const limit = () => Type.Optional(Type.Integer({ minimum: 1, maximum: 1e15 }));

/** A disk's limits (src/config/disk-throttle.ts has the cross-key rules). */
export const DiskThrottleSchema = Type.Object(
  {
    bps: limit(),
    bps_rd: limit(),
    bps_wr: limit(),
    iops: limit(),
    iops_rd: limit(),
    iops_wr: limit(),
    bps_max: limit(),
    bps_rd_max: limit(),
    bps_wr_max: limit(),
    iops_max: limit(),
    iops_rd_max: limit(),
    iops_wr_max: limit(),
    bps_max_length: limit(),
    bps_rd_max_length: limit(),
    bps_wr_max_length: limit(),
    iops_max_length: limit(),
    iops_rd_max_length: limit(),
    iops_wr_max_length: limit(),
    iops_size: limit(),
  },
  { additionalProperties: false },
);

export const DiskSpecSchema = Type.Object(
  {
    target: Type.String({ description: "absolute host path; '' = empty cdrom" }),
    format: Type.Union([Type.Literal('raw'), Type.Literal('qcow2')]),
    vdev: Type.String(),
    access: Type.Union([Type.Literal('rw'), Type.Literal('ro')]),
    devtype: Type.Union([Type.Literal('disk'), Type.Literal('cdrom')]),
    throttle: Type.Optional(DiskThrottleSchema),
    backendtype: Type.Optional(Type.Literal('xenode')),
  },
  { additionalProperties: false },
);

export const VifSpecSchema = Type.Object(
  {
    mac: Type.Optional(Type.String({ pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' })),
    bridge: Type.Optional(Type.String()),
    ip: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    rate: Type.Optional(Type.String()),
    vifname: Type.Optional(Type.String()),
    mtu: Type.Optional(Type.Integer({ minimum: 68, maximum: 65535 })),
    vlan: Type.Optional(Type.Integer({ minimum: 1, maximum: 4094 })),
  },
  { additionalProperties: false },
);

export const StaticShmSpecSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_]{1,128}$' }),
    begin: Type.Integer({ minimum: 0, multipleOf: 4096 }),
    size: Type.Integer({ minimum: 4096, multipleOf: 4096 }),
    offset: Type.Integer({ minimum: 0, multipleOf: 4096 }),
    role: Type.Union([Type.Literal('owner'), Type.Literal('borrower')]),
    prot: Type.Literal('rw'),
    cachePolicy: Type.String(),
  },
  { additionalProperties: false },
);

export const DomainConfigSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
    uuid: Type.Optional(Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' })),
    sponsor: Type.String({ pattern: '^[a-z0-9_-]{1,64}$' }),
    type: Type.Union([Type.Literal('pvh'), Type.Literal('hvm'), Type.Literal('pv')]),
    memory: Type.Integer({ minimum: 1 }),
    maxmem: Type.Integer({ minimum: 1 }),
    vcpus: Type.Integer({ minimum: 1, maximum: 128 }),
    maxvcpus: Type.Integer({ minimum: 1, maximum: 128 }),
    kernel: Type.Optional(Type.String()),
    ramdisk: Type.Optional(Type.String()),
    cmdline: Type.String(),
    on_poweroff: Action,
    on_reboot: Action,
    on_crash: Action,
    on_watchdog: Action,
    accel: Type.Union([Type.Literal('auto'), Type.Literal('kvm'), Type.Literal('tcg')]),
    machine: Type.Union([Type.Literal('auto'), Type.Literal('pc'), Type.Literal('q35'), Type.Literal('microvm')]),
    device_model_override: Type.Optional(Type.String()),
    rng: Type.Optional(Type.Boolean()),
    ha: Type.Optional(Type.Boolean()),
    firmware: Type.Optional(Type.Union([Type.Literal('seabios'), Type.Literal('ovmf')])),
    cloud_init: Type.Optional(
      Type.Object(
        {
          hostname: Type.Optional(Type.String({ maxLength: 253, pattern: '^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$' })),
          ssh_keys: Type.Optional(
            Type.Array(
              Type.String({
                maxLength: 17000,
                pattern: '^[a-z0-9@.-]{3,64} [A-Za-z0-9+/=]{16,16384}( [\\x20-\\x7e]{0,256})?$',
              }),
              {
                maxItems: 32,
              },
            ),
          ),
          user_data: Type.Optional(Type.String({ maxLength: 65536 })),
        },
        { additionalProperties: false },
      ),
    ),
    cpus: Type.Optional(Type.String()),
    cpus_per_vcpu: Type.Optional(Type.Array(Type.String())),
    cpus_soft: Type.Optional(Type.String()),
    cpus_soft_per_vcpu: Type.Optional(Type.Array(Type.String())),
    cpu_weight: Type.Integer({ minimum: 1, maximum: 65535 }),
    cap: Type.Integer({ minimum: 0 }),
    disk: Type.Array(DiskSpecSchema),
    vif: Type.Array(VifSpecSchema),
    static_shm: Type.Array(StaticShmSpecSchema),
    on_memory_noncompliance: Type.Union([Type.Literal('report'), Type.Literal('pause'), Type.Literal('destroy')]),
  },
  { additionalProperties: false },
);

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
/** Compile-time proof that the schema describes exactly DomainConfig. */
export type SchemaMatchesDomainConfig = Assert<Equals<Static<typeof DomainConfigSchema>, DomainConfig>>;

/** Property order of an object schema, used to print JSON in a stable, readable order. */
export function propertyOrder(schema: TSchema): string[] | undefined {
  const props = (schema as { properties?: Record<string, unknown> }).properties;
  return props ? Object.keys(props) : undefined;
}
