// Debian's busybox-static (i386), the reference real-world binary (issue 5): its integer
// stdin/stdout applets and `sh -c` pipelines of them, run natively (this x86-64 host runs the
// i386 binary) and under the LWK from an initramfs holding /bin/busybox and its applet links
// (symbolic links, and one hard link), must give the same stdout bytes and exit status. Inputs
// are fixed: text, a few KB of deterministic binary data, and files under data/ (natively in
// the working directory, under the LWK in the initramfs, where the working directory is /).
// .ci/run fetches busybox into .cache/busybox/; without it the tests skip (and fail under CI).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runLwk } from '../../apps/cli/run.ts';
import { buildCpio, type TreeSpec } from '../../kernel/fs/cpio.ts';
import { CI, FIXED_ENV } from './lwk.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const BUSYBOX = join(ROOT, '.cache/busybox/root/bin/busybox');
const have = existsSync(BUSYBOX);

const APPLETS = ['sha256sum', 'sha512sum', 'md5sum', 'sha1sum', 'sort', 'uniq', 'tr', 'gzip', 'gunzip', 'od', 'base64',
  'wc', 'expr', 'printf', 'sed', 'grep', 'cut', 'echo', 'true', 'false', 'sh', 'cat', 'head'];

/** Deterministic bytes (an LCG), for the hashes, gzip, od and base64. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

const TEXT = [
  'pear 3 green', 'apple 10 red', 'fig 7 purple', 'apple 10 red', 'banana 2 yellow', 'cherry 12 red',
  'banana 2 yellow', 'date 5 brown', 'Elder 1 black', 'grape 8 green', 'apple 1 green', 'kiwi 4 brown',
].join('\n') + '\n';
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nbin:x:2:2:bin:/bin:/bin/false\nuser:x:1000:1000:A User,,,:/home/user:/bin/sh\n';
const BIN4K = bytes(4096, 7);
const GZ = (() => {
  if (!have) return Buffer.alloc(0);
  const r = spawnSync(BUSYBOX, ['-c'], { argv0: 'gzip', input: TEXT.repeat(20), env: FIXED_ENV });
  return r.stdout as Buffer;
})();

interface Case { argv: string[]; input?: string | Buffer }

const sh = (script: string, input?: string | Buffer): Case => ({ argv: ['sh', '-c', script], input });

const CASES: Case[] = [
  // hashes of stdin and of files
  { argv: ['sha256sum'], input: BIN4K },
  { argv: ['sha512sum'], input: BIN4K },
  { argv: ['md5sum'], input: BIN4K },
  { argv: ['sha1sum'], input: BIN4K },
  { argv: ['sha256sum', 'data/text', 'data/bin'] },
  { argv: ['md5sum', 'data/missing', 'data/text'] },
  { argv: ['sha1sum', '-c', 'data/sums'] },
  // sort (no -n/-g: floating point waits for the x87 issue), uniq
  { argv: ['sort'], input: TEXT },
  { argv: ['sort', '-r'], input: TEXT },
  { argv: ['sort', '-u'], input: TEXT },
  { argv: ['sort', '-k', '3,3', '-k', '1,1'], input: TEXT },
  { argv: ['sort', '-t', ':', '-k', '3', 'data/passwd'] },
  { argv: ['sort', '-f'], input: TEXT },
  { argv: ['uniq'], input: 'a\na\nb\nb\nb\nc\na\n' },
  { argv: ['uniq', '-c'], input: 'a\na\nb\nb\nb\nc\na\n' },
  { argv: ['uniq', '-d'], input: 'a\na\nb\nc\nc\n' },
  // tr
  { argv: ['tr', 'a-z', 'A-Z'], input: TEXT },
  { argv: ['tr', '-d', 'aeiou'], input: TEXT },
  { argv: ['tr', '-s', ' \\n', '_'], input: 'a  b\n\n\nc   d\n' },
  { argv: ['tr', '-c', 'a-z\\n', '.'], input: TEXT },
  // gzip, gunzip
  { argv: ['gzip', '-c'], input: TEXT.repeat(20) },
  { argv: ['gzip', '-9', '-c'], input: BIN4K },
  { argv: ['gunzip', '-c'], input: GZ },
  { argv: ['gunzip', '-c'], input: 'not gzip data\n' },
  // od, base64
  { argv: ['od'], input: BIN4K.subarray(0, 100) },
  { argv: ['od', '-A', 'x', '-t', 'x1'], input: BIN4K.subarray(0, 100) },
  { argv: ['od', '-c'], input: 'hi\tthere\n\x01\x7f' },
  { argv: ['od', '-t', 'd4', '-N', '32'], input: BIN4K },
  { argv: ['base64'], input: BIN4K.subarray(0, 1000) },
  { argv: ['base64', '-d'], input: Buffer.from(BIN4K.subarray(0, 999)).toString('base64') + '\n' },
  // wc
  { argv: ['wc'], input: TEXT },
  { argv: ['wc', '-l', '-w', '-c', 'data/text', 'data/passwd'] },
  // expr
  { argv: ['expr', '3', '+', '4', '*', '5'] },
  { argv: ['expr', 'length', 'hello world'] },
  { argv: ['expr', '17', '/', '0'] },
  { argv: ['expr', '0', '&', '1'] },
  { argv: ['expr', 'abc123', ':', '[a-z]*\\([0-9]*\\)'] },
  { argv: ['expr', '-7', '%', '3'] },
  // printf with integer formats
  { argv: ['printf', '%d|%5d|%-5d|%x|%X|%o|%u\\n', '42', '-7', '3', '255', '3054', '8', '99'] },
  { argv: ['printf', '%s=%c %%\\t%b\\n', 'key', 'value', 'a\\nb'] },
  { argv: ['printf', '%d\\n', 'notanumber'] },
  // sed
  { argv: ['sed', '-n', '2,4p'], input: TEXT },
  { argv: ['sed', 's/a/A/g;s/ [0-9]* / # /'], input: TEXT },
  { argv: ['sed', '-e', '1d', '-e', '$a\\', '-e', 'the end', '-e', '/red/!d'], input: TEXT },
  { argv: ['sed', '-E', 's/([a-z]+) ([0-9]+)/\\2:\\1/'], input: TEXT },
  // grep
  { argv: ['grep', 'red'], input: TEXT },
  { argv: ['grep', '-c', '-i', 'e'], input: TEXT },
  { argv: ['grep', '-v', '-n', 'a'], input: TEXT },
  { argv: ['grep', '-E', '^(fig|kiwi)'], input: TEXT },
  { argv: ['grep', 'nothing-matches'], input: TEXT },
  { argv: ['grep', '-l', 'bin', 'data/passwd', 'data/text'] },
  // cut
  { argv: ['cut', '-d', ':', '-f', '1,3,7', 'data/passwd'] },
  { argv: ['cut', '-c', '2-5'], input: TEXT },
  { argv: ['cut', '-d', ' ', '-f', '2-'], input: TEXT },
  // echo, true, false
  { argv: ['echo', 'hello', 'world'] },
  { argv: ['echo', '-n', 'no newline'] },
  { argv: ['echo', '-e', 'tab\\there\\nnext'] },
  { argv: ['true'] },
  { argv: ['false'] },
  // sh -c with pipelines of them (fork, execve, wait4, pipes, signals)
  sh('echo hello | tr a-z A-Z'),
  sh('sort | uniq -c | sort -r', TEXT),
  sh('cat data/text | grep -v green | cut -d " " -f 1 | sort -u | tr "\\n" ,'),
  sh('sha256sum < data/bin | cut -c 1-16; md5sum data/text'),
  sh('gzip -c < data/text | gunzip -c | sha1sum'),
  sh('base64 data/bin | base64 -d | cmp - data/bin && echo same', undefined),
  sh('printf "%d\\n" 3 1 2 | sort; echo status $?'),
  sh('x=$(expr 6 \\* 7); echo "answer $x"; test $x -eq 42 && echo yes'),
  sh('for w in one two three; do echo $w | wc -c; done'),
  sh('false | true; echo $?; true | false; echo $?'),
  sh('grep -q apple; echo $?', TEXT),
  sh('echo start; exit 3'),
  sh('od -A n -t x1 data/bin | head -2'),
  sh('yes | head -n 3; echo done'),
  sh('seqs="a b c"; for s in $seqs; do printf "%s-" $s; done; echo'),
  sh('read a b; echo "first=$a rest=$b"; cat', 'one two three\nline2\n'),
  sh('kill -TERM $$; echo not reached'),
  sh('trap "echo caught USR1" USR1; kill -USR1 $$; echo after'),
  sh('sed -n "/red/=" data/text | wc -l; echo $((3 + 4 * 5))'),
  sh('(echo sub; exit 4); echo "sub status $?"'),
];

const TMP = mkdtempSync(join(tmpdir(), 'v3vee-busybox-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

function files(): Record<string, Buffer | string> {
  const sums = ['text', 'passwd'].map((f) => {
    const r = spawnSync('sha1sum', [`data/${f}`], { cwd: TMP, encoding: 'latin1' });
    return r.stdout;
  }).join('');
  return { 'data/text': TEXT, 'data/passwd': PASSWD, 'data/bin': BIN4K, 'data/sums': sums };
}

function setUp(): Uint8Array {
  mkdirSync(join(TMP, 'data'), { recursive: true });
  writeFileSync(join(TMP, 'data/text'), TEXT);
  writeFileSync(join(TMP, 'data/passwd'), PASSWD);
  writeFileSync(join(TMP, 'data/bin'), BIN4K);
  const f = files();
  writeFileSync(join(TMP, 'data/sums'), f['data/sums']);
  const tree: TreeSpec = { 'bin/busybox': new Uint8Array(readFileSync(BUSYBOX)) };
  for (const a of APPLETS) tree[`bin/${a}`] = a === 'md5sum' ? { hardlink: 'bin/busybox' } : { link: 'busybox' };
  tree['usr/bin/cmp'] = { link: '../../bin/busybox' };
  tree['usr/bin/yes'] = { link: '/bin/busybox' };
  for (const [p, v] of Object.entries(f)) tree[p] = typeof v === 'string' ? v : new Uint8Array(v);
  return buildCpio(tree);
}

class Collect {
  readonly chunks: Uint8Array[] = [];
  write(b: Uint8Array): void { this.chunks.push(b.slice()); }
  bytes(): Buffer { return Buffer.concat(this.chunks); }
}

const label = (c: Case): string => c.argv.map((a) => (/^[\w./=:,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');

describe.skipIf(!have && !CI)('busybox: the LWK against native execution of the same binary', () => {
  it('busybox-static (i386) is in .cache/busybox (CI requires it; .ci/run fetches it)', () => {
    expect(have).toBe(true);
  });
  const initrd = have ? setUp() : new Uint8Array(0);
  for (const c of CASES) {
    it(`${label(c)}: same stdout and exit status`, () => {
      const input = c.input === undefined ? Buffer.alloc(0) : Buffer.from(c.input as string, typeof c.input === 'string' ? 'latin1' : undefined);
      const n = spawnSync(BUSYBOX, c.argv.slice(1), { argv0: c.argv[0], cwd: TMP, input, env: FIXED_ENV, timeout: 30_000 });
      expect(n.error).toBeUndefined();
      const out = new Collect(), err = new Collect();
      const r = runLwk({
        path: `/bin/${c.argv[0]}`, args: c.argv.slice(1), initrd, stdin: input, stdout: out, stderr: err,
        maxCycles: 40_000_000_000,
      });
      const nativeStatus = n.signal !== null ? 128 + (({ SIGTERM: 15, SIGPIPE: 13, SIGKILL: 9 }) as Record<string, number>)[n.signal] : n.status;
      expect(out.bytes().toString('latin1')).toBe((n.stdout as Buffer).toString('latin1'));
      expect(r.status).toBe(nativeStatus);
      expect([...r.kernel.unknownSyscalls.keys()]).toEqual([]);
    });
  }

  it('run from the host (no initramfs): the shell re-executes /proc/self/exe, which also reads as the program', () => {
    const image = new Uint8Array(readFileSync(BUSYBOX));
    const out = new Collect();
    const r = runLwk({ path: BUSYBOX, image, args: ['sh', '-c', 'wc -c < /proc/self/exe; echo abc | sha256sum'], stdout: out });
    expect(out.bytes().toString('latin1')).toBe(`${image.length}\nedeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb  -\n`);
    expect(r.status).toBe(0);
  });
});
