import { describe, expect, it } from 'vitest';
import { parseArgs, parseIntOption, parseSize, UsageError } from '../../apps/cli/options.ts';

describe('CLI options', () => {
  it('parses sizes', () => {
    expect(parseSize('128M')).toBe(128 << 20);
    expect(parseSize('1G')).toBe(1 << 30);
    expect(parseSize('512k')).toBe(512 << 10);
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('lots')).toThrow(UsageError);
  });
  it('parses numbers with ranges', () => {
    expect(parseIntOption('0x10', '--x')).toBe(16);
    expect(() => parseIntOption('-1', '--cores', 1)).toThrow(/not a number/);
    expect(() => parseIntOption('0', '--cores', 1, 8)).toThrow(/out of range/);
  });
  it('parses options, flags, repeats and positionals', () => {
    const p = parseArgs(['--mem', '64M', 'k.elf', '--module=a', '--module', 'b', '--stats'], { mem: 'value', module: 'multi', stats: 'flag' });
    expect(p.opts.get('mem')).toEqual(['64M']);
    expect(p.opts.get('module')).toEqual(['a', 'b']);
    expect(p.flags.has('stats')).toBe(true);
    expect(p.positional).toEqual(['k.elf']);
    expect(() => parseArgs(['--nope'], {})).toThrow(/unknown option --nope/);
    expect(() => parseArgs(['--mem'], { mem: 'value' })).toThrow(/needs a value/);
    const q = parseArgs(['prog', '--mem', 'x'], { mem: 'value' }, true);
    expect(q.positional).toEqual(['prog', '--mem', 'x']);
  });
});
