// Telemetry: per exit reason counts and simulated handler cycles (charged from vmm/costs.ts),
// the ring of last exits, the --trace exits line and the --stats lines.
import { describe, expect, it } from 'vitest';
import { vmmCosts } from '../../vmm/costs.ts';
import { exitName, formatStats, Telemetry, traceLine } from '../../vmm/telemetry.ts';
import { bootVm } from './harness.ts';

describe('telemetry', () => {
  it('names exit codes as the APM does', () => {
    expect([0x7b, 0x400, 0x13, 0x4e, 0x24, -1, 0x72].map(exitName)).toEqual(['IOIO', 'NPF', 'CR3_WRITE', 'EXCP14', 'DR4_READ', 'INVALID', 'CPUID']);
  });
  it('keeps the last N exits, oldest first, and counts per reason', () => {
    const t = new Telemetry(3);
    for (let i = 0; i < 5; i++) t.record(i % 2 === 0 ? 0x7b : 0x78, 10 + i, 0x1000 + i, i, 0, 100 * i);
    expect(t.lastExits().map((e) => e.rip)).toEqual([0x1002, 0x1003, 0x1004]);
    const s = t.snapshot(1000);
    expect(s.byReason).toEqual([{ code: 0x7b, name: 'IOIO', count: 3, cycles: 10 + 12 + 14 }, { code: 0x78, name: 'HLT', count: 2, cycles: 11 + 13 }]);
    expect(s.handlerCycles).toBe(60);
    const lines = formatStats(s);
    expect(lines[0]).toMatch(/^vm: 5 exits, 60 cycles in handlers \(6\.00% of 1000 guest cycles\)/);
    expect(lines[1]).toMatch(/^ {2}IOIO +3 exits +36 cycles \(12\/exit\)$/);
  });
  it('formats a trace line with the reason, guest EIP and exit info', () => {
    expect(traceLine(7, 0, 123, 0x7b, 0x100010, 0x00e90010, 0x100012)).toBe('exit 7 core 0 @123: IOIO (0x7b) rip=0x00100010 info1=0x00e90010 info2=0x00100012');
  });
  it('a hooked port exit is charged the dispatch and port-hook costs, and the guest sees them', () => {
    const loop = Uint8Array.from([0xe6, 0xe9, 0xeb, 0xfc]);
    const rig = bootVm({ memory: '4M', devices: [{ name: 'generic', options: { ranges: [{ base: 0xe9, length: 1 }] } }], kernel: { path: 'l', format: 'flat' } }, { l: loop });
    rig.run(2e6);
    const s = rig.vm.stats();
    const io = s.byReason.find((r) => r.name === 'IOIO')!;
    expect(io.count).toBeGreaterThan(500);
    expect(io.cycles).toBe(io.count * (vmmCosts.exitDispatch.cycles + vmmCosts.ioHook.cycles));
    expect(s.counters['generic.writes']).toBe(io.count);
    // each round trip: VMRUN + #VMEXIT, the host, the VMM's entry and exit work, two instructions
    expect(rig.machine.cores[0].cycles / io.count).toBeGreaterThan(1350 + vmmCosts.exitDispatch.cycles + vmmCosts.ioHook.cycles + vmmCosts.entryPrep.cycles);
  });
});
