// A VM's life: creation (memory preallocated contiguously, or a clean failure), the states and
// their transitions (stopped -> running <-> paused -> stopped, error), and free().
import { describe, expect, it } from 'vitest';
import { createVm, type VmState } from '../../vmm/index.ts';
import { kernelPath } from '../kernels/kernels.ts';
import { assemblerMissing, GUEST_BASE, guestImage } from './guests.ts';
import { makeHost, readImage, tryVm } from './harness.ts';

const COUNTER = 0x200000;
/** A guest that counts in guest-physical memory forever. */
const COUNTING = '1:incl 0x200000\n jmp 1b\n';

describe.skipIf(assemblerMissing && process.env.CI !== 'true')('VM lifecycle', () => {
  function counting() {
    const r = tryVm({ memory: '16M', kernel: { path: 'g', format: 'flat', load: GUEST_BASE } }, { g: guestImage(COUNTING) });
    if (!r.ok) throw new Error(r.error);
    const rig = r.value;
    const states: VmState[] = [];
    rig.vm.onStateChange((s) => states.push(s));
    const count = () => rig.host.mem.read(rig.vm.ram.base + COUNTER, 4);
    const runFor = (cycles: number) => { rig.machine.stopReason = null; rig.machine.run(rig.machine.cores[0].cycles + cycles); };
    return { rig, states, count, runFor };
  }

  it('created stopped; start runs it; pause stops its progress; resume continues; stop ends it', () => {
    const { rig, states, count, runFor } = counting();
    const vm = rig.vm;
    expect(vm.state()).toBe('stopped');
    expect(vm.pause().ok).toBe(false);
    expect(vm.start().ok).toBe(true);
    expect(vm.state()).toBe('running');
    expect(vm.start()).toEqual({ ok: false, error: 'vm vm: already started (a VM runs once; create another)' });
    runFor(2e6);
    const a = count();
    expect(a).toBeGreaterThan(1000);
    expect(vm.pause().ok).toBe(true);
    expect(vm.state()).toBe('paused');
    runFor(1e5); // the kick's exit
    const b = count();
    runFor(2e6);
    expect(count()).toBe(b);
    expect(vm.resume().ok).toBe(true);
    expect(vm.resume().ok).toBe(false);
    runFor(2e6);
    expect(count()).toBeGreaterThan(b + 1000);
    expect(vm.stop().ok).toBe(true);
    runFor(1e5);
    expect(vm.state()).toBe('stopped');
    expect(vm.report().reason).toBe('stopped by the host');
    const c = count();
    runFor(2e6);
    expect(count()).toBe(c);
    expect(states).toEqual(['running', 'paused', 'running', 'stopped']);
    expect(vm.stats().byReason.find((r) => r.name === 'INTR')?.count).toBeGreaterThanOrEqual(2);
  });

  it('stop() ends a paused VM', () => {
    const { rig, runFor, states } = counting();
    rig.vm.start();
    runFor(1e6);
    rig.vm.pause();
    runFor(1e5);
    expect(rig.vm.stop().ok).toBe(true);
    runFor(1e5);
    expect(rig.vm.state()).toBe('stopped');
    expect(states).toEqual(['running', 'paused', 'stopped']);
    expect(rig.vm.stop().ok).toBe(false);
  });

  it('free() returns every page to the host, only once the VM has stopped, and only once', () => {
    const { machine, host } = makeHost();
    const before = host.memStats().freePages;
    const r = createVm(host, { memory: '16M', kernel: { path: 'g', format: 'flat' } }, { files: { g: guestImage(COUNTING) } });
    if (!r.ok) throw new Error(r.error);
    const vm = r.value;
    expect(host.memStats().freePages).toBeLessThan(before - 4096);
    vm.start();
    machine.run(1e6);
    expect(vm.free().ok).toBe(false);
    vm.stop();
    machine.stopReason = null;
    machine.run(machine.cores[0].cycles + 1e5);
    expect(vm.free()).toEqual({ ok: true, value: undefined });
    expect(host.memStats().freePages).toBe(before);
    expect(vm.free().ok).toBe(false);
    expect(vm.start().ok).toBe(false);
  });

  it('a VM that never started can be freed', () => {
    const { host } = makeHost();
    const before = host.memStats().freePages;
    const r = createVm(host, { memory: '8M', paging: 'hashed', kernel: { path: 'hello.elf' } }, { files: { 'hello.elf': readImage(kernelPath('hello')) } });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.free().ok).toBe(true);
    expect(host.memStats().freePages).toBe(before);
  });
});

describe('VM creation failures', () => {
  it('fails cleanly when guest memory cannot be preallocated contiguously', () => {
    const { host } = makeHost({ ram: 64 << 20 });
    const before = host.memStats().freePages;
    const r = createVm(host, { memory: '128M', kernel: 'hello.elf' }, { files: { 'hello.elf': readImage(kernelPath('hello')) } });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^cannot preallocate 128 MiB of contiguous guest memory: the host has [\d.]+ MiB free/);
    expect(host.memStats().freePages).toBe(before);
  });
  it('fails with a line naming a missing or malformed kernel image, and frees what it took', () => {
    const { host } = makeHost();
    const before = host.memStats().freePages;
    const a = createVm(host, { memory: '16M', kernel: 'k.elf' }, { files: {} });
    expect(!a.ok && a.error).toBe('kernel k.elf: no image given for this path');
    const b = createVm(host, { memory: '16M', kernel: 'k.elf' }, { files: { 'k.elf': new Uint8Array(100) } });
    expect(!b.ok && b.error).toMatch(/^kernel k.elf: no multiboot header/);
    expect(host.memStats().freePages).toBe(before);
  });
  it('a host with another host-interface version is refused with a line', () => {
    const { host } = makeHost();
    const old = Object.create(host, { version: { value: { major: 0, minor: 9 } } });
    const r = createVm(old, { kernel: 'k' }, { files: {} });
    expect(!r.ok && r.error).toMatch(/implements host interface 0\.9; this VMM needs 1\.0/);
  });
  it('a config error is returned, not thrown', () => {
    const { host } = makeHost();
    const r = createVm(host, { memory: 'lots', kernel: 'k' }, { files: {} });
    expect(!r.ok && r.error).toMatch(/^config: memory: /);
  });
});
