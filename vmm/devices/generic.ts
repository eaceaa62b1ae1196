/**
 * Palacios' "generic" device: port ranges the guest may touch without a model behind them.
 * Each range either ignores its accesses (reads all ones, writes dropped) or prints them on the
 * host's log, and counts them. Options: { ranges: [{ base, length, mode: "ignore" | "print" }] }.
 */
import type { PortDevice } from '../../hw/devices/types.ts';
import { checkOptions, type DeviceRegistry } from './registry.ts';

interface Range { base: number; length: number; print: boolean }

export function registerGenericDevice(reg: DeviceRegistry): void {
  reg.register('generic', 'port ranges that are ignored or printed (options: ranges [{base, length, mode}])', (ctx, o, id) => {
    const e = checkOptions(o, ['ranges'], 'generic'); if (e) return e;
    if (!Array.isArray(o.ranges) || o.ranges.length === 0) return 'device generic: option ranges must be a non-empty array of {base, length, mode}';
    const ranges: Range[] = [];
    for (let i = 0; i < o.ranges.length; i++) {
      const r: unknown = o.ranges[i];
      const f = `device generic: ranges[${i}]`;
      if (r === null || typeof r !== 'object') return `${f} must be {base, length, mode}`;
      const { base, length, mode } = r as Record<string, unknown>;
      if (typeof base !== 'number' || !Number.isInteger(base) || base < 0 || base > 0xffff) return `${f}.base must be a port 0-0xFFFF`;
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || base + length > 0x10000) return `${f}.length must be at least 1 and end by port 0xFFFF`;
      if (mode !== undefined && mode !== 'ignore' && mode !== 'print') return `${f}.mode must be "ignore" or "print"`;
      ranges.push({ base, length, print: mode === 'print' });
    }
    let reads = 0, writes = 0;
    for (const r of ranges) {
      const d: PortDevice = {
        ioRead(off, size) {
          reads++;
          if (r.print) ctx.print(`${id}: in${size === 1 ? 'b' : size === 2 ? 'w' : 'l'} 0x${(r.base + off).toString(16)}`);
          return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
        },
        ioWrite(off, size, v) {
          writes++;
          if (r.print) ctx.print(`${id}: out${size === 1 ? 'b' : size === 2 ? 'w' : 'l'} 0x${(r.base + off).toString(16)} <- 0x${(v >>> 0).toString(16)}`);
        },
      };
      const err = ctx.hookPorts(id, d, [{ base: r.base, length: r.length, offset: 0 }]);
      if (err !== null) return err;
    }
    return { name: 'generic', id, stats: () => ({ reads, writes }) };
  });
}
