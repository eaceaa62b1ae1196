/**
 * The kernel's random numbers: deterministic, from the boot seed (`--seed`), so runs repeat
 * exactly (DESIGN.md: no Math.random in a simulated path). Used for AT_RANDOM and getrandom(2).
 * The generator is SplitMix32 (a 32-bit variant of Steele, Lea and Flood's SplitMix).
 */
export class KernelRandom {
  private state: number;
  constructor(seed: number) { this.state = (seed ^ 0x9e3779b9) >>> 0; }

  next32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let k = 0; k < n; k += 4) {
      const v = this.next32();
      for (let j = 0; j < 4 && k + j < n; j++) out[k + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}
