/**
 * Wide accesses to byte-wide registers. On a PC bus a 16- or 32-bit access to 8-bit device
 * ports is split into byte cycles at port, port+1, ...; these helpers do that split,
 * little-endian, for devices whose registers are bytes.
 */

export function readBytes(read8: (offset: number) => number, offset: number, size: 1 | 2 | 4): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= (read8(offset + i) & 0xff) << (8 * i);
  return v >>> 0;
}

export function writeBytes(write8: (offset: number, value: number) => void, offset: number, size: 1 | 2 | 4, value: number): void {
  for (let i = 0; i < size; i++) write8(offset + i, (value >>> (8 * i)) & 0xff);
}
