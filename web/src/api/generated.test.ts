// The checked-in generated types must be what `npm run codegen` makes now from the schema and
// the operations: a forgotten regeneration (or a schema change) fails here.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '@graphql-codegen/cli';
import { format, resolveConfig } from 'prettier';
import { expect, it } from 'vitest';
import config from '../../codegen';

const WEB = fileURLToPath(new URL('../..', import.meta.url));

it('src/api/generated is up to date (run `npm run codegen`)', { timeout: 30_000 }, async () => {
  const outputs: { filename: string; content: string }[] = await generate({ ...config, cwd: WEB, silent: true }, false);
  expect(outputs.length).toBeGreaterThan(0);
  for (const { filename, content } of outputs) {
    const file = path.resolve(WEB, filename);
    const expected = await format(content, { ...(await resolveConfig(file)), filepath: file });
    expect(readFileSync(file, 'utf8'), path.relative(WEB, file)).toBe(expected);
  }
});
