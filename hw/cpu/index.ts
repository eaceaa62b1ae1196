// The CPU's public surface for the machine, the kernel and the VMM.
export { Cpu, type CpuOptions, type HostHandler, type InterruptController, type IoBus, type TrapRecord } from './cpu.ts';
export { CodeCache } from './codecache.ts';
export { defaultCpuid, type CpuidTable } from './cpuid.ts';
export { P6_TLBS, Tlb, type TlbConfig } from './tlb.ts';
