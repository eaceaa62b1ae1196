// The LWK's file system (issue 5, "Files"; kernel/fs/): the cpio newc reader and writer (one-line
// errors on malformed archives, normalised packing of a host directory), path lookup (symbolic
// links, "..", loops, ENOTDIR, /proc/self/exe, /dev), and the path and descriptor system calls,
// differentially: apps/native/files.c run natively on a host directory and under the LWK on the
// same tree packed into its initramfs must print the same; and the calls that would change the
// tree fail as on a read-only mount.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { packDirectory } from '../../apps/cli/initrd.ts';
import { buildCpio, CpioError, readCpio, S_IFDIR, S_IFLNK, S_IFREG, writeCpio } from '../../kernel/fs/cpio.ts';
import { loadInitramfs } from '../../kernel/fs/initramfs.ts';
import { isDir, type ProcView } from '../../kernel/fs/vfs.ts';
import { E } from '../../kernel/syscalls/errno.ts';
import { SEED } from '../native/diff.ts';
import { canRunNatively, CI, programPath, runOnLwk } from './lwk.ts';

const TMP = mkdtempSync(join(tmpdir(), 'v3vee-fs-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
const ROOT = resolve(import.meta.dirname, '../..');
const dec = new TextDecoder();
const VIEW: ProcView = { pid: 7, exeOf: (pid) => (pid === 7 ? '/bin/prog' : null) };

/** The tree apps/native/files.c expects, under `dir`/data. */
function makeTree(dir: string): string {
  const d = join(dir, 'data');
  mkdirSync(join(d, 'sub/deeper'), { recursive: true });
  writeFileSync(join(d, 'hello.txt'), 'hello, world\n');
  symlinkSync('hello.txt', join(d, 'link'));
  symlinkSync('sub', join(d, 'dirlink'));
  writeFileSync(join(d, 'sub/inner.txt'), 'inner\n');
  writeFileSync(join(d, 'sub/deeper/file'), 'deep file\n');
  symlinkSync('nowhere', join(d, 'dangling'));
  symlinkSync('loop2', join(d, 'loop1'));
  symlinkSync('loop1', join(d, 'loop2'));
  writeFileSync(join(d, 'exec.sh'), '#!/bin/sh\n');
  chmodSync(join(d, 'exec.sh'), 0o755);
  for (const f of ['hello.txt', 'sub/inner.txt', 'sub/deeper/file']) chmodSync(join(d, f), 0o644);
  for (const x of ['.', 'sub', 'sub/deeper']) chmodSync(join(d, x), 0o755);
  return d;
}

describe('cpio newc archives', () => {
  it('round-trip: what writeCpio writes, readCpio reads back (names, modes, data, links)', () => {
    const bytes = buildCpio({ 'bin/busybox': 'ELF...', 'bin/sh': { link: 'busybox' }, 'etc/motd': 'hi\n', 'empty': { dir: true } });
    const e = readCpio(bytes);
    expect(e.map((x) => x.name)).toEqual(['bin', 'bin/busybox', 'bin/sh', 'empty', 'etc', 'etc/motd']);
    const sh = e.find((x) => x.name === 'bin/sh')!;
    expect(sh.mode & 0o170000).toBe(S_IFLNK);
    expect(dec.decode(sh.data)).toBe('busybox');
    expect(e.find((x) => x.name === 'etc')!.mode & 0o170000).toBe(S_IFDIR);
    expect(e.every((x) => x.mtime === 0 && x.uid === 0 && x.gid === 0)).toBe(true);
    expect(bytes.length % 4).toBe(0);
  });

  it('any tree survives packing and unpacking (property, fixed seed)', () => {
    const name = fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
    const arb = fc.dictionary(fc.array(name, { minLength: 1, maxLength: 3 }).map((p) => p.join('/')), fc.uint8Array({ maxLength: 300 }), { maxKeys: 12 });
    fc.assert(fc.property(arb, (tree) => {
      // a path that is also a prefix of another cannot be a file: keep only the leaves
      const paths = Object.keys(tree).filter((p) => !Object.keys(tree).some((q) => q.startsWith(p + '/')));
      const spec = Object.fromEntries(paths.map((p) => [p, tree[p]]));
      const fs = loadInitramfs(buildCpio(spec));
      for (const p of paths) {
        const r = fs.lookup('/' + p, '/', VIEW, true);
        if (typeof r === 'number') return false;
        if (Buffer.compare(Buffer.from(r.inode.data), Buffer.from(spec[p])) !== 0) return false;
      }
      // packing is deterministic whatever the order the entries come in
      const reversed = Object.fromEntries(paths.reverse().map((p) => [p, tree[p]]));
      return Buffer.compare(Buffer.from(buildCpio(spec)), Buffer.from(buildCpio(reversed))) === 0;
    }), { seed: SEED, numRuns: 60 });
  });

  const good = buildCpio({ 'a/b': 'data' });
  const cases: [string, Uint8Array, RegExp][] = [
    ['bad magic', Uint8Array.from([...good.subarray(0, 5), 0x39, ...good.subarray(6)]), /bad magic '070709' at offset 0/],
    ['truncated header', good.subarray(0, 60), /truncated header at offset 0/],
    ['no trailer', good.subarray(0, good.length - 124), /truncated header at offset \d+ \(no TRAILER!!! entry\)/],
    ['bad hex field', Uint8Array.from([...good.subarray(0, 14), 0x7a, ...good.subarray(15)]), /bad header field 1 'z/],
    ['data past the end', (() => { const b = writeCpio([{ name: 'f', ino: 1, mode: S_IFREG | 0o644, uid: 0, gid: 0, nlink: 1, mtime: 0, data: new Uint8Array(100), devMajor: 0, devMinor: 0, rdevMajor: 0, rdevMinor: 0 }]); return b.subarray(0, 150); })(), /'f' claims 100 bytes but the archive ends first/],
    ['empty', new Uint8Array(0), /truncated header at offset 0/],
  ];
  for (const [what, bytes, msg] of cases) {
    it(`a malformed archive (${what}) is a one-line CpioError`, () => {
      let err: unknown = null;
      try { loadInitramfs(bytes); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(CpioError);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).not.toContain('\n');
    });
  }

  it('an entry under a file is refused', () => {
    expect(() => loadInitramfs(buildCpio({ a: 'file', 'a/b': { dir: true } }))).toThrow(/'a\/b' is inside 'a', which is not a directory|bad/);
  });

  it('a host directory packs with normalised metadata: same tree, same bytes; hard links kept', () => {
    const one = makeTree(join(TMP, 'one'));
    const two = makeTree(join(TMP, 'two'));
    linkSync(join(one, 'hello.txt'), join(one, 'hard'));
    linkSync(join(two, 'hello.txt'), join(two, 'hard'));
    utimesSync(join(two, 'hello.txt'), 12345, 67890);
    const a = packDirectory(one), b = packDirectory(two);
    expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).toBe(0);
    const e = readCpio(a);
    expect(e.map((x) => x.name)).toEqual([...e.map((x) => x.name)].sort());
    expect(e.every((x) => x.mtime === 0 && x.uid === 0 && x.gid === 0)).toBe(true);
    const h1 = e.find((x) => x.name === 'hard')!, h2 = e.find((x) => x.name === 'hello.txt')!;
    expect(h1.ino).toBe(h2.ino);
    expect(h1.nlink).toBe(2);
    const fs = loadInitramfs(a);
    const r1 = fs.lookup('/hard', '/', VIEW, true), r2 = fs.lookup('/hello.txt', '/', VIEW, true);
    expect(typeof r1 !== 'number' && typeof r2 !== 'number' && r1.inode === r2.inode).toBe(true);
    expect(typeof r1 !== 'number' && dec.decode(r1.inode.data)).toBe('hello, world\n');
  });
});

describe('path lookup', () => {
  const fs = loadInitramfs(buildCpio({
    'bin/busybox': 'BB', 'bin/sh': { link: 'busybox' }, 'bin/abs': { link: '/bin/busybox' }, 'usr/bin/env': { link: '../../bin/busybox' },
    'loop/a': { link: 'b' }, 'loop/b': { link: 'a' }, 'f': 'x', 'd/e': { dir: true },
  }));
  const look = (p: string, cwd = '/', follow = true) => fs.lookup(p, cwd, VIEW, follow);
  it('follows relative, absolute and ../ links; lstat-style lookups stop at the link', () => {
    for (const p of ['/bin/sh', '/bin/abs', '/usr/bin/env', 'bin/../bin/./sh', '/../../bin/sh']) {
      const r = look(p);
      expect(typeof r !== 'number' && dec.decode(r.inode.data)).toBe('BB');
    }
    const l = look('/bin/sh', '/', false);
    expect(typeof l !== 'number' && (l.inode.mode & 0o170000)).toBe(S_IFLNK);
    const rel = look('sh', '/bin'), relNoFollow = look('sh', '/bin', false);
    expect(typeof rel !== 'number' && rel.path).toBe('/bin/busybox'); // canonical: the link resolved
    expect(typeof relNoFollow !== 'number' && relNoFollow.path).toBe('/bin/sh');
  });
  it('errors as namei gives them', () => {
    expect(look('/loop/a')).toBe(-E.ELOOP);
    expect(look('/f/x')).toBe(-E.ENOTDIR);
    expect(look('/f/')).toBe(-E.ENOTDIR);
    expect(look('/nope')).toBe(-E.ENOENT);
    expect(look('')).toBe(-E.ENOENT);
    expect(look('/' + 'x'.repeat(256))).toBe(-E.ENAMETOOLONG);
  });
  it('/dev has null, zero, console and tty; /proc/self/exe names the process\'s program', () => {
    for (const [n, kind] of [['null', 'null'], ['zero', 'zero'], ['console', 'console'], ['tty', 'console']]) {
      const r = look(`/dev/${n}`);
      expect(typeof r !== 'number' && r.inode.device).toBe(kind);
    }
    const exe = look('/proc/self/exe', '/', false);
    expect(typeof exe !== 'number' && fs.linkTarget(exe.inode, VIEW)).toBe('/bin/prog');
    const through = look('/proc/self/exe');
    expect(typeof through === 'number').toBe(true); // /bin/prog is not in this tree
    expect(look('/proc/8/exe')).toBe(-E.ENOENT);
    const d = look('/d/e/..');
    expect(typeof d !== 'number' && isDir(d.inode) && d.path).toBe('/d');
  });
});

const native = canRunNatively();

describe.skipIf(!native && !CI)('files.c: the LWK\'s initramfs against this host\'s file system', () => {
  it('open, read, lseek, pread, stat/lstat, getdents64, readlink, access, chdir/getcwd, openat, /dev: same output', () => {
    expect(native).toBe(true);
    const top = join(TMP, 'files');
    const data = makeTree(top);
    const n = spawnSync(programPath('files'), [data], { encoding: 'latin1', env: { PATH: '/bin:/usr/bin', HOME: '/' } });
    expect(n.status).toBe(0);
    const l = runOnLwk('files', ['/data'], { initrd: packDirectory(top) });
    expect(l.stdout).toBe(n.stdout);
    expect(l.status).toBe(0);
    expect(l.run.kernel.unknownSyscalls.size).toBe(0);
    expect(n.stdout).toMatch(/through a directory link: 6 'inner/); // the comparison saw real work
  });
});

describe('a read-only file system', () => {
  it('calls that would change the tree fail as on a read-only mount (EROFS after EEXIST/ENOENT/EISDIR)', () => {
    const top = join(TMP, 'ro');
    makeTree(top);
    const l = runOnLwk('files', ['/data', 'write'], { initrd: packDirectory(top) });
    expect(l.status).toBe(0);
    expect(l.stdout).toBe([
      'create: -1 Read-only file system',
      'open for writing: -1 Read-only file system',
      'open O_RDWR: -1 Read-only file system',
      'O_TRUNC: -1 Read-only file system',
      'O_EXCL existing: -1 File exists',
      'create in missing dir: -1 No such file or directory',
      'open a directory for writing: -1 Is a directory',
      'mkdir: -1 Read-only file system',
      'mkdir existing: -1 File exists',
      'unlink: -1 Read-only file system',
      'unlink missing: -1 No such file or directory',
      'rmdir: -1 Read-only file system',
      'rename: -1 Read-only file system',
      'access W_OK: -1 Read-only file system',
      'access W_OK /dev/null: 0 ok',
      'write to /dev/null: 1 ok',
      '',
    ].join('\n'));
  });

  it('run --initrd: a malformed archive exits 2 with one line; a program of the initramfs runs by its path', () => {
    const bad = join(TMP, 'bad.cpio');
    writeFileSync(bad, 'not an archive at all, and long enough for a header.............................................................');
    const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'apps/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'latin1', timeout: 60_000 });
    const r = cli(['run', '--initrd', bad, programPath('hello')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--initrd .*bad magic 'not an' at offset 0/);
    const top = join(TMP, 'withprog');
    mkdirSync(join(top, 'bin'), { recursive: true });
    writeFileSync(join(top, 'bin/hello'), Buffer.from(spawnSync('cat', [programPath('hello')], { encoding: 'buffer' }).stdout));
    chmodSync(join(top, 'bin/hello'), 0o755);
    symlinkSync('hello', join(top, 'bin/hi'));
    const ok = cli(['run', '--initrd', top, '/bin/hi', '5']);
    expect(ok.stdout).toBe('hello, world\nwritten by write(2)\n');
    expect(ok.status).toBe(5);
    expect(cli(['run', '--initrd', top, '/bin/missing']).status).toBe(2);
  });
});
