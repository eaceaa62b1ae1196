/**
 * A VM's configuration: the JSON a user writes (or the CLI builds from flags), its schema, and
 * the validation that turns untrusted JSON into a VmConfig or one line naming the bad field
 * and why (the CLI prints it and exits with status 2).
 *
 * ```json
 * { "name": "hello",
 *   "memory": "64M",                      // bytes, or a size with K/M/G; a multiple of 1 MiB, 2M-3G
 *   "cores": 1,
 *   "paging": { "mode": "nested", "format": "long" },   // or "nested" | "hashed" | "shadow" | "shadow-cache"
 *   "devices": [ { "name": "uart16550", "options": { "stream": "guest-console" } }, ... ],
 *   "kernel": { "path": "hello.elf", "format": "multiboot" },
 *   "cmdline": "console=ttyS0",
 *   "files": [ { "path": "initrd.img", "cmdline": "initrd" } ] }
 * ```
 *
 * Paging: `mode` "nested" takes a `format` ("long", the default: 4-level radix as Palacios on a
 * 64-bit host; "pae"; "legacy"; "hashed"); "shadow" takes a `strategy` ("vtlb", the default:
 * Palacios' virtual TLB; "cache": shadow tables cached across CR3 switches). The string forms
 * "nested", "hashed", "shadow", "shadow-cache" are shorthands (the CLI's --paging values).
 * Devices: each names a registered device (vmm/devices/registry.ts) with its options; absent,
 * the default PC set (DEFAULT_DEVICES). The kernel's format: "multiboot" (a Multiboot v1 image,
 * as qemu -kernel) or "flat" (raw bytes at `load`, entered at `entry` in flat 32-bit protected
 * mode, for tests and benchmarks).
 */

export type PagingModeName = 'nested' | 'hashed' | 'shadow' | 'shadow-cache';
export type NestedFormat = 'long' | 'pae' | 'legacy' | 'hashed';
export type ShadowStrategy = 'vtlb' | 'cache';

export interface PagingConfig {
  mode: 'nested' | 'shadow';
  /** nested only (default 'long'). */
  format?: NestedFormat;
  /** shadow only (default 'vtlb'). */
  strategy?: ShadowStrategy;
}

export interface DeviceConfig {
  /** A registered device name (vmm/devices/registry.ts). */
  name: string;
  /** Instance name for reports (default: the device name). */
  id?: string;
  options?: Readonly<Record<string, unknown>>;
}

export interface KernelConfig {
  /** Where the image comes from (the embedder hands its bytes to createVm under this name). */
  path: string;
  format: 'multiboot' | 'flat';
  /** flat: guest-physical load address (default 0x100000). */
  load?: number;
  /** flat: entry point (default: the load address). */
  entry?: number;
}

export interface FileConfig {
  path: string;
  /** The Multiboot module's command line (default: the path). */
  cmdline?: string;
}

export interface VmConfig {
  name: string;
  /** Guest RAM in bytes. */
  memory: number;
  cores: number;
  paging: PagingConfig;
  devices: DeviceConfig[];
  kernel: KernelConfig;
  /** Appended to the kernel's path in the Multiboot command line, as qemu -append. */
  cmdline: string;
  files: FileConfig[];
  /** `--trace exits`: one line per exit on the host's log. */
  traceExits: boolean;
  /** How many of the last exits a report keeps (default 16). */
  exitHistory: number;
}

/** The JSON as a user may write it (before validation and defaults). */
export type VmConfigJson = Record<string, unknown>;

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export const MIN_MEMORY = 2 << 20;
/** Guest-physical space below the IOAPIC/LAPIC pages and the BIOS ROM. */
export const MAX_MEMORY = 3 * 1024 ** 3;
export const MEMORY_ALIGN = 1 << 20;
export const MAX_CORES = 64;

/** The default device set: a PC's (issue: 8259 pair, 8254, COM1, CMOS, i8042, LAPIC, IOAPIC, port 0x80, isa-debug-exit). */
export const DEFAULT_DEVICES: readonly DeviceConfig[] = [
  { name: 'pic8259' }, { name: 'lapic' }, { name: 'ioapic' }, { name: 'pit8254' },
  { name: 'uart16550', options: { stream: 'guest-console' } }, { name: 'cmos' }, { name: 'i8042' },
  { name: 'post-code' }, { name: 'debug-exit' },
];

/** Parses "128M", "1G", "4096K", "65536" or a number of bytes; NaN when malformed. */
export function parseSize(v: unknown): number {
  if (typeof v === 'number') return Number.isInteger(v) ? v : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(v.trim());
  if (m === null) return NaN;
  const mul = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mul;
}

const PAGING_SHORT: Readonly<Record<PagingModeName, PagingConfig>> = {
  nested: { mode: 'nested', format: 'long' },
  hashed: { mode: 'nested', format: 'hashed' },
  shadow: { mode: 'shadow', strategy: 'vtlb' },
  'shadow-cache': { mode: 'shadow', strategy: 'cache' },
};

/** The paging mode factory name (vmm/paging/mode.ts PagingModeFactory.name) a config selects. */
export function pagingModeName(p: PagingConfig): PagingModeName {
  if (p.mode === 'shadow') return p.strategy === 'cache' ? 'shadow-cache' : 'shadow';
  return p.format === 'hashed' ? 'hashed' : 'nested';
}

const TOP_FIELDS = new Set(['name', 'memory', 'cores', 'paging', 'devices', 'kernel', 'cmdline', 'files', 'traceExits', 'exitHistory']);

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

export interface ValidateOptions {
  /** Device names that exist (default: accept any name; createVm checks against its registry). */
  deviceNames?: ReadonlySet<string>;
}

/**
 * Validates a configuration and fills in defaults. The error is one line: "config: FIELD: why".
 */
export function validateConfig(json: unknown, opts: ValidateOptions = {}): Result<VmConfig> {
  const bad = (field: string, why: string): Result<VmConfig> => ({ ok: false, error: `config: ${field}: ${why}` });
  if (!isObj(json)) return bad('(top level)', 'must be a JSON object');
  for (const k of Object.keys(json)) if (!TOP_FIELDS.has(k)) return bad(k, `unknown field (known: ${[...TOP_FIELDS].join(', ')})`);

  const name = json.name ?? 'vm';
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) return bad('name', 'must be a string of 1-64 characters');

  const memRaw = json.memory ?? '128M';
  const memory = parseSize(memRaw);
  if (Number.isNaN(memory)) return bad('memory', `${JSON.stringify(memRaw)} is not a size (bytes, or a number with K, M or G, e.g. "128M")`);
  if (memory < MIN_MEMORY) return bad('memory', `${memory} bytes is below the minimum of 2 MiB`);
  if (memory > MAX_MEMORY) return bad('memory', `${memory} bytes is above the maximum of 3 GiB (guest-physical space below the APIC pages)`);
  if (memory % MEMORY_ALIGN !== 0) return bad('memory', `${memory} bytes is not a multiple of 1 MiB`);

  const cores = json.cores ?? 1;
  if (typeof cores !== 'number' || !Number.isInteger(cores) || cores < 1 || cores > MAX_CORES) return bad('cores', `must be an integer from 1 to ${MAX_CORES}, got ${JSON.stringify(cores)}`);

  let paging: PagingConfig;
  const p = json.paging ?? 'nested';
  if (typeof p === 'string') {
    if (!(p in PAGING_SHORT)) return bad('paging', `unknown mode ${JSON.stringify(p)} (nested, hashed, shadow, shadow-cache)`);
    paging = { ...PAGING_SHORT[p as PagingModeName] };
  } else if (isObj(p)) {
    for (const k of Object.keys(p)) if (k !== 'mode' && k !== 'format' && k !== 'strategy') return bad(`paging.${k}`, 'unknown field (mode, format, strategy)');
    if (p.mode !== 'nested' && p.mode !== 'shadow') return bad('paging.mode', `must be "nested" or "shadow", got ${JSON.stringify(p.mode)}`);
    if (p.mode === 'nested') {
      if (p.strategy !== undefined) return bad('paging.strategy', 'only shadow paging has a strategy');
      const f = p.format ?? 'long';
      if (f !== 'long' && f !== 'pae' && f !== 'legacy' && f !== 'hashed') return bad('paging.format', `must be "long", "pae", "legacy" or "hashed", got ${JSON.stringify(f)}`);
      paging = { mode: 'nested', format: f };
    } else {
      if (p.format !== undefined) return bad('paging.format', 'only nested paging has a table format');
      const s = p.strategy ?? 'vtlb';
      if (s !== 'vtlb' && s !== 'cache') return bad('paging.strategy', `must be "vtlb" or "cache", got ${JSON.stringify(s)}`);
      paging = { mode: 'shadow', strategy: s };
    }
  } else return bad('paging', 'must be a mode name or an object {mode, format|strategy}');

  let devices: DeviceConfig[];
  if (json.devices === undefined) devices = DEFAULT_DEVICES.map((d) => ({ ...d }));
  else {
    if (!Array.isArray(json.devices)) return bad('devices', 'must be an array of {name, id?, options?}');
    devices = [];
    const ids = new Set<string>();
    for (let i = 0; i < json.devices.length; i++) {
      const raw: unknown = json.devices[i];
      const f = `devices[${i}]`;
      const d: unknown = typeof raw === 'string' ? { name: raw } : raw;
      if (!isObj(d)) return bad(f, 'must be a device name or an object {name, id?, options?}');
      for (const k of Object.keys(d)) if (k !== 'name' && k !== 'id' && k !== 'options') return bad(`${f}.${k}`, 'unknown field (name, id, options)');
      if (typeof d.name !== 'string' || d.name === '') return bad(`${f}.name`, 'must be a registered device name');
      if (opts.deviceNames !== undefined && !opts.deviceNames.has(d.name)) {
        return bad(`${f}.name`, `no device ${JSON.stringify(d.name)} is registered (known: ${[...opts.deviceNames].sort().join(', ')})`);
      }
      if (d.id !== undefined && (typeof d.id !== 'string' || d.id === '')) return bad(`${f}.id`, 'must be a non-empty string');
      const id = (d.id as string | undefined) ?? d.name;
      if (ids.has(id)) return bad(`${f}.id`, `${JSON.stringify(id)} is used twice (give each instance its own id)`);
      ids.add(id);
      if (d.options !== undefined && !isObj(d.options)) return bad(`${f}.options`, 'must be an object');
      devices.push({ name: d.name, ...(d.id !== undefined ? { id: d.id as string } : {}), ...(d.options !== undefined ? { options: d.options as Record<string, unknown> } : {}) });
    }
  }
  if (opts.deviceNames !== undefined) {
    for (let i = 0; i < devices.length; i++) {
      if (!opts.deviceNames.has(devices[i].name)) return bad(`devices[${i}].name`, `no device ${JSON.stringify(devices[i].name)} is registered`);
    }
  }

  const k = json.kernel;
  if (k === undefined) return bad('kernel', 'missing: the guest kernel image {path, format}');
  let kernel: KernelConfig;
  if (typeof k === 'string') kernel = { path: k, format: 'multiboot' };
  else if (isObj(k)) {
    for (const key of Object.keys(k)) if (!['path', 'format', 'load', 'entry'].includes(key)) return bad(`kernel.${key}`, 'unknown field (path, format, load, entry)');
    if (typeof k.path !== 'string' || k.path === '') return bad('kernel.path', 'must be the image file name');
    const fmt = k.format ?? 'multiboot';
    if (fmt !== 'multiboot' && fmt !== 'flat') return bad('kernel.format', `must be "multiboot" or "flat", got ${JSON.stringify(fmt)}`);
    kernel = { path: k.path, format: fmt };
    if (fmt === 'multiboot' && (k.load !== undefined || k.entry !== undefined)) return bad(k.load !== undefined ? 'kernel.load' : 'kernel.entry', 'only a flat image takes a load address or entry (a Multiboot image names its own)');
    if (k.load !== undefined) {
      if (!isU32(k.load) || k.load % 4096 !== 0) return bad('kernel.load', 'must be a page-aligned guest-physical address');
      if (k.load >= memory) return bad('kernel.load', `0x${k.load.toString(16)} is beyond the guest's memory (${memory} bytes)`);
      kernel.load = k.load;
    }
    if (k.entry !== undefined) {
      if (!isU32(k.entry)) return bad('kernel.entry', 'must be a 32-bit address');
      kernel.entry = k.entry;
    }
  } else return bad('kernel', 'must be a path or an object {path, format, load?, entry?}');

  const cmdline = json.cmdline ?? '';
  if (typeof cmdline !== 'string') return bad('cmdline', 'must be a string');
  if (cmdline.length > 4000) return bad('cmdline', 'longer than 4000 characters');

  const files: FileConfig[] = [];
  if (json.files !== undefined) {
    if (!Array.isArray(json.files)) return bad('files', 'must be an array of {path, cmdline?}');
    for (let i = 0; i < json.files.length; i++) {
      const f: unknown = json.files[i];
      if (typeof f === 'string') { files.push({ path: f }); continue; }
      if (!isObj(f) || typeof f.path !== 'string' || f.path === '') return bad(`files[${i}].path`, 'must be a file name');
      if (f.cmdline !== undefined && typeof f.cmdline !== 'string') return bad(`files[${i}].cmdline`, 'must be a string');
      files.push({ path: f.path, ...(f.cmdline !== undefined ? { cmdline: f.cmdline as string } : {}) });
    }
    if (files.length > 0 && kernel.format !== 'multiboot') return bad('files', 'modules need a Multiboot kernel');
  }

  const traceExits = json.traceExits ?? false;
  if (typeof traceExits !== 'boolean') return bad('traceExits', 'must be true or false');
  const exitHistory = json.exitHistory ?? 16;
  if (typeof exitHistory !== 'number' || !Number.isInteger(exitHistory) || exitHistory < 1 || exitHistory > 4096) return bad('exitHistory', 'must be an integer from 1 to 4096');

  return { ok: true, value: { name, memory, cores, paging, devices, kernel, cmdline, files, traceExits, exitHistory } };
}
