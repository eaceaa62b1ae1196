// VM configuration validation: one test per rule, each naming the field and why in one line.
import { describe, expect, it } from 'vitest';
import { DEFAULT_DEVICES, parseSize, validateConfig } from '../../vmm/config.ts';
import { deviceRegistry } from '../../vmm/index.ts';
import { tryVm } from './harness.ts';

const K = { kernel: 'k.elf' };
const names = deviceRegistry.names();
function err(cfg: unknown): string {
  const r = validateConfig(cfg, { deviceNames: names });
  if (r.ok) throw new Error('expected an error');
  expect(r.error).not.toMatch(/\n/);
  return r.error;
}

describe('VM config validation', () => {
  it('fills the defaults: 128 MiB, 1 core, nested 4-level paging, the PC devices, no cmdline', () => {
    const r = validateConfig(K, { deviceNames: names });
    expect(r.ok && r.value).toEqual({
      name: 'vm', memory: 128 << 20, cores: 1, paging: { mode: 'nested', format: 'long' }, devices: DEFAULT_DEVICES.map((d) => ({ ...d })),
      kernel: { path: 'k.elf', format: 'multiboot' }, cmdline: '', files: [], traceExits: false, exitHistory: 16,
    });
  });
  it('the top level must be an object', () => expect(err([])).toBe('config: (top level): must be a JSON object'));
  it('unknown fields are refused', () => expect(err({ ...K, memroy: 1 })).toMatch(/^config: memroy: unknown field/));
  it('name: a string of 1-64 characters', () => expect(err({ ...K, name: '' })).toMatch(/^config: name: /));
  it('memory: a size', () => {
    expect(parseSize('64M')).toBe(64 << 20);
    expect(parseSize('1G')).toBe(1 << 30);
    expect(parseSize('4096K')).toBe(4 << 20);
    expect(err({ ...K, memory: '12X' })).toMatch(/^config: memory: "12X" is not a size/);
  });
  it('memory: at least 2 MiB', () => expect(err({ ...K, memory: '1M' })).toMatch(/^config: memory: .* below the minimum of 2 MiB/));
  it('memory: at most 3 GiB', () => expect(err({ ...K, memory: '4G' })).toMatch(/^config: memory: .* above the maximum of 3 GiB/));
  it('memory: a multiple of 1 MiB', () => expect(err({ ...K, memory: 3 * 1048576 + 4096 })).toMatch(/^config: memory: .* not a multiple of 1 MiB/));
  it('cores: an integer from 1 to 64', () => {
    expect(err({ ...K, cores: 0 })).toMatch(/^config: cores: must be an integer from 1 to 64/);
    expect(err({ ...K, cores: 1.5 })).toMatch(/^config: cores: /);
  });
  it('paging: the shorthands name a mode and a format or strategy', () => {
    const p = (x: string) => { const r = validateConfig({ ...K, paging: x }); return r.ok ? r.value.paging : null; };
    expect(p('hashed')).toEqual({ mode: 'nested', format: 'hashed' });
    expect(p('shadow')).toEqual({ mode: 'shadow', strategy: 'vtlb' });
    expect(p('shadow-cache')).toEqual({ mode: 'shadow', strategy: 'cache' });
    expect(err({ ...K, paging: 'fast' })).toMatch(/^config: paging: unknown mode "fast"/);
  });
  it('paging.mode: nested or shadow', () => expect(err({ ...K, paging: { mode: 'ept' } })).toMatch(/^config: paging.mode: /));
  it('paging.format: a nested table format, only for nested paging', () => {
    expect(err({ ...K, paging: { mode: 'nested', format: 'x' } })).toMatch(/^config: paging.format: must be "long", "pae", "legacy" or "hashed"/);
    expect(err({ ...K, paging: { mode: 'shadow', format: 'long' } })).toMatch(/^config: paging.format: only nested paging/);
  });
  it('paging.strategy: vtlb or cache, only for shadow paging', () => {
    expect(err({ ...K, paging: { mode: 'shadow', strategy: 'lru' } })).toMatch(/^config: paging.strategy: must be "vtlb" or "cache"/);
    expect(err({ ...K, paging: { mode: 'nested', strategy: 'vtlb' } })).toMatch(/^config: paging.strategy: only shadow paging/);
  });
  it('devices: an array', () => expect(err({ ...K, devices: {} })).toMatch(/^config: devices: must be an array/));
  it('devices: each names a registered device', () => expect(err({ ...K, devices: [{ name: 'vga' }] })).toMatch(/^config: devices\[0\].name: no device "vga" is registered \(known: .*uart16550/));
  it('devices: only name, id and options', () => expect(err({ ...K, devices: [{ name: 'cmos', irq: 8 }] })).toMatch(/^config: devices\[0\].irq: unknown field/));
  it('devices: instance ids are unique', () => expect(err({ ...K, devices: ['cmos', 'cmos'] })).toMatch(/^config: devices\[1\].id: "cmos" is used twice/));
  it('devices: options is an object', () => expect(err({ ...K, devices: [{ name: 'cmos', options: 3 }] })).toMatch(/^config: devices\[0\].options: must be an object/));
  it('kernel: required', () => expect(err({})).toMatch(/^config: kernel: missing/));
  it('kernel.path: a file name', () => expect(err({ kernel: { path: '' } })).toMatch(/^config: kernel.path: /));
  it('kernel.format: multiboot or flat', () => expect(err({ kernel: { path: 'k', format: 'bzImage' } })).toMatch(/^config: kernel.format: must be "multiboot" or "flat"/));
  it('kernel.load and kernel.entry: only for a flat image', () => expect(err({ kernel: { path: 'k', load: 0x100000 } })).toMatch(/^config: kernel.load: only a flat image/));
  it('kernel.load: page-aligned and inside guest memory', () => {
    expect(err({ kernel: { path: 'k', format: 'flat', load: 0x100010 } })).toMatch(/^config: kernel.load: must be a page-aligned/);
    expect(err({ memory: '16M', kernel: { path: 'k', format: 'flat', load: 0x1000000 } })).toMatch(/^config: kernel.load: .* beyond the guest's memory/);
  });
  it('kernel.entry: a 32-bit address', () => expect(err({ kernel: { path: 'k', format: 'flat', entry: -1 } })).toMatch(/^config: kernel.entry: /));
  it('cmdline: a string of at most 4000 characters', () => {
    expect(err({ ...K, cmdline: 3 })).toBe('config: cmdline: must be a string');
    expect(err({ ...K, cmdline: 'x'.repeat(4001) })).toMatch(/^config: cmdline: longer than 4000/);
  });
  it('files: an array of {path, cmdline?}, only with a Multiboot kernel', () => {
    expect(err({ ...K, files: 'initrd' })).toMatch(/^config: files: must be an array/);
    expect(err({ ...K, files: [{ cmdline: 'x' }] })).toMatch(/^config: files\[0\].path: /);
    expect(err({ kernel: { path: 'k', format: 'flat' }, files: ['m'] })).toMatch(/^config: files: modules need a Multiboot kernel/);
  });
  it('traceExits: a boolean', () => expect(err({ ...K, traceExits: 'yes' })).toBe('config: traceExits: must be true or false'));
  it('exitHistory: 1-4096', () => expect(err({ ...K, exitHistory: 0 })).toMatch(/^config: exitHistory: /));
  it('device options are checked by the device when the VM is created', () => {
    const r = tryVm({ ...K, devices: [{ name: 'uart16550', options: { baud: 9600 } }] }, { 'k.elf': new Uint8Array(16) });
    expect(!r.ok && r.error).toBe('config: devices[0]: device uart16550: unknown option "baud" (known: port, irq, stream)');
    const s = tryVm({ ...K, devices: [{ name: 'uart16550', options: { stream: 'nowhere' } }] }, { 'k.elf': new Uint8Array(16) });
    expect(!s.ok && s.error).toBe('config: devices[0]: device uart16550: the host has no stream "nowhere" (option stream)');
    const g = tryVm({ ...K, devices: [{ name: 'generic', options: { ranges: [{ base: 0x70000, length: 1 }] } }] }, { 'k.elf': new Uint8Array(16) });
    expect(!g.ok && g.error).toBe('config: devices[0]: device generic: ranges[0].base must be a port 0-0xFFFF');
  });
  it('two devices on one port are refused', () => {
    const r = tryVm({ ...K, devices: ['cmos', { name: 'generic', options: { ranges: [{ base: 0x70, length: 2 }] } }] }, { 'k.elf': new Uint8Array(16) });
    expect(!r.ok && r.error).toMatch(/^config: devices\[1\]: device generic: port 0x70 claimed by both cmos and generic/);
  });
});
