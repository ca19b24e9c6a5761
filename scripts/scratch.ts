// A scratch copy of the tracked tree (node_modules linked, not copied), where the mutation scripts
// (mutations.ts, mutate.ts) break the code without touching the working tree.
import { cpSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function scratch(root: string, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const files = Bun.spawnSync(['git', 'ls-files', '-co', '--exclude-standard'], { cwd: root }).stdout.toString().split('\n').filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(root, f), join(dir, f));
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}
