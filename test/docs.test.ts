// The documentation stays true: the README is a front page, every link and every code reference to a
// docs section resolves, the generated reference pages match what the schema and the CLI generate
// (`npm run docs`), and the plan examples the pages show run.
import { execFile } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { docsDir, generatedDocs } from '../scripts/docs.js';

const root = join(import.meta.dirname, '..');
const pages = ['README.md', ...readdirSync(docsDir).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (file: string) => readFileSync(join(root, file), 'utf8');
/** Markdown outside fenced code blocks. */
const prose = (markdown: string) => markdown.replace(/^```[\s\S]*?^```/gm, '');
/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
const headings = (file: string) => [...prose(text(file)).matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.trim());

describe('the documentation', () => {
  it('has a README of at most 200 lines, with the pipeline drawn and a table of where everything else is', () => {
    const readme = text('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(200);
    expect(readme).toContain('```mermaid');
    for (const page of pages.filter((p) => p.startsWith('docs/'))) expect(readme, page).toContain(`](${page})`);
  });

  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target] of prose(text(page)).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // http(s), mailto
        const [path, anchor] = target!.split('#');
        const file = path ? normalize(join(dirname(page), path)) : page;
        if (!existsSync(join(root, file))) broken.push(`${page}: ${target} (no file ${file})`);
        else if (anchor && file.endsWith('.md') && !headings(file).map(slug).includes(anchor)) broken.push(`${page}: ${target} (no heading #${anchor} in ${file})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every docs/<page>.md, "<section>" the code cites names a section of that page', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter((f) => /\.(ts|sh|py|ya?ml|go)$/.test(f) || f === 'Dockerfile');
    const dangling: string[] = [];
    for (const file of files) {
      for (const [, page, section] of text(file).matchAll(/(docs\/[\w-]+\.md),\s*(?:\/\/\s*)?"([^"]+)"/g)) {
        const wanted = section!.replace(/\s*\n\s*(\/\/|#)?\s*/g, ' ');
        if (!existsSync(join(root, page!)) || !headings(page!).some((h) => h.startsWith(wanted) || h.replace(/`/g, '').startsWith(wanted))) dangling.push(`${file}: ${page}, "${wanted}"`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it('holds the generated reference pages as npm run docs writes them', () => {
    for (const [file, generated] of Object.entries(generatedDocs())) expect(readFileSync(join(docsDir, file), 'utf8'), `docs/${file} is stale: npm run docs`).toBe(generated);
  });

  it('shows plan examples that run as shown (they need no cloud)', async () => {
    const commands = new Set<string>();
    for (const page of pages) {
      for (const [, args] of text(page).matchAll(/(?:npx aks-finetune|npm run cli --) (plan examples\/[^\s#`]+(?: --(?:hours|json) ?\S*)*)/g)) commands.add(args!.trim());
    }
    expect(commands.size).toBeGreaterThanOrEqual(2);
    for (const command of commands) {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', ...command.split(' ')], { cwd: root });
      expect(stdout, command).toMatch(/: valid/);
    }
  });
});
