/**
 * The system-call path: from the trap (INT 0x80 or SYSENTER) to the handler and back.
 *
 *   1. charge the entry (kernel/costs.ts: INT 0x80 or SYSENTER path)
 *   2. read the number (EAX) and the arguments: EBX ECX EDX ESI EDI EBP for INT 0x80; for
 *      SYSENTER the same, except that the sixth is the word at [EBP] (Linux's sysenter
 *      convention, where EBP holds the user stack pointer)
 *   3. look the number up in the table (table.ts); an unknown call is -ENOSYS and counted
 *   4. run the handler with the calling thread and process; it returns EAX, blocks the thread
 *      (the scheduler then saves it and sets EAX when it resumes) or ends it
 *   5. --strace: one line per call on the kernel's strace sink
 * The caller (trap.ts) then lets the scheduler decide what the core runs next and records the
 * call's cycles per core (kernel/noise.ts). The program continues at the instruction after
 * INT 0x80 or SYSENTER (the core's EIP already points there).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { charge } from '../costs.ts';
import type { Kernel } from '../kernel.ts';
import type { Process } from '../proc/process.ts';
import { RESTART_SYSCALL } from '../sched/thread.ts';
import { E, errnoText } from './errno.ts';
import { SYSCALLS, syscallName } from './table.ts';
import { NORETURN, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

/** Runs the system call the running thread of `core` asked for; returns its number. */
export function syscallEntry(k: Kernel, cpu: Cpu, core: number, sysenter: boolean): number {
  charge(cpu, sysenter ? 'sysenterEntry' : 'syscallEntry');
  const thread = k.sched.current(core);
  if (thread === null || thread.owner === null) throw new Error(`system call on core ${core} with no process running`);
  const proc = k.processes.get(thread.owner.pid)!;
  // a thread killed from another core (exit_group, execve, a fatal signal) leaves at this trap
  // (the scheduler drops it): its call is not run, since its process may have a new program
  if (thread.killed) return cpu.r[0] >>> 0;
  const r = cpu.r;
  const nr = r[0] >>> 0;
  const a = [r[3] >>> 0, r[1] >>> 0, r[2] >>> 0, r[6] >>> 0, r[7] >>> 0, r[5] >>> 0];
  if (sysenter) {
    a[5] = proc.aspace.readU32(cpu, r[5] >>> 0) ?? 0;
  }
  const def = SYSCALLS[nr];
  const c: SysCtx = { k, cpu, core, thread, proc, a, nr };
  charge(cpu, 'syscallBody');
  let ret: SysRet;
  if (def === undefined) {
    k.unknownSyscalls.set(nr, (k.unknownSyscalls.get(nr) ?? 0) + 1);
    ret = -E.ENOSYS;
  } else ret = def.fn(c);
  const trace = k.strace;
  if (ret === NORETURN) {
    if (trace !== null) trace(`${callText(c, def, null)} = ?`);
  } else if (typeof ret === 'number') {
    cpu.r[0] = ret | 0;
    if (trace !== null) trace(`${callText(c, def, ret)} = ${resultText(ret, def)}`);
  } else {
    const block = ret;
    const onResume = trace === null ? block.onResume : () => {
      const v = block.onResume();
      // a call run again from the start (RESTART_SYSCALL) is traced again when it returns, as strace shows it
      if (v === RESTART_SYSCALL) trace(`${callText(c, def, null)} = ? ERESTARTNOINTR (To be restarted)`);
      else trace(`${callText(c, def, v)} = ${resultText(v, def)}`);
      return v;
    };
    k.sched.block(cpu, core, block.until, onResume);
  }
  return nr;
}

// ---------------------------------------------------------------------------- --strace

const dec = new TextDecoder('latin1');

function quote(bytes: Uint8Array, max = 32): string {
  let s = '"';
  for (const b of bytes.subarray(0, max)) {
    if (b === 0x22 || b === 0x5c) s += '\\' + String.fromCharCode(b);
    else if (b === 0x0a) s += '\\n';
    else if (b === 0x09) s += '\\t';
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += '\\' + b.toString(8);
  }
  s += '"';
  return bytes.length > max ? s + '...' : s;
}

/** strace's look at user memory is not the program's work: it is not charged. */
const FREE = { cycles: 0 };

function userString(proc: Process, addr: number): string {
  if (addr === 0) return 'NULL';
  const r = proc.aspace.copyinString(FREE, addr, 256);
  if (!r.ok) return `0x${addr.toString(16)}`;
  return JSON.stringify(dec.decode(r.value));
}

function userBuffer(proc: Process, addr: number, len: number): string {
  if (len <= 0) return '""';
  const r = proc.aspace.copyin(FREE, addr, Math.min(len, 33));
  return r.ok ? quote(r.value.subarray(0, Math.min(len, 33)), 32) : `0x${addr.toString(16)}`;
}

/** "write(1, \"hello\\n\", 6)" for --strace; `ret` is the result when the call has returned. */
function callText(c: SysCtx, def: SyscallDef | undefined, ret: number | null): string {
  if (def === undefined) {
    return `${syscallName(c.nr)}(${c.a.slice(0, 6).map((v) => `0x${v.toString(16)}`).join(', ')})`;
  }
  const parts: string[] = [];
  for (let i = 0; i < def.args.length; i++) {
    const v = c.a[i];
    switch (def.args[i]) {
      case 'd': parts.push(String(v | 0)); break;
      case 'u': parts.push(String(v >>> 0)); break;
      case 'x': parts.push(`0x${v.toString(16)}`); break;
      case 'o': parts.push(`0${v.toString(8)}`); break;
      case 'p': parts.push(v === 0 ? 'NULL' : `0x${v.toString(16)}`); break;
      case 's': parts.push(userString(c.proc, v)); break;
      case 'b': parts.push(userBuffer(c.proc, v, c.a[i + 1] | 0)); break;
      case 'B': parts.push(ret !== null && ret > 0 ? userBuffer(c.proc, v, ret) : `0x${v.toString(16)}`); break;
      default: break;
    }
  }
  return `${def.name}(${parts.join(', ')})`;
}

function resultText(ret: number, def: SyscallDef | undefined): string {
  if (ret < 0 && ret >= -4095) return `-1 ${errnoText(-ret)}`;
  if (def?.hexResult === true) return `0x${(ret >>> 0).toString(16)}`;
  return String(ret);
}
