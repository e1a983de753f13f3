// GraphQL Code Generator: the result and variables types of the operations in
// src/api/operations.ts, from the server's published schema. `npm run codegen` writes them
// (then formats them with prettier); src/api/generated.test.ts fails when they are stale.

import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../schema.graphql',
  documents: ['src/api/operations.ts'],
  generates: {
    'src/api/generated/operations.ts': {
      plugins: ['typescript-operations'],
      config: {
        scalars: { DateTime: 'string', Int64: 'number' },
        skipTypename: true,
        useTypeImports: true,
        // Only the shapes: a reworded description in the schema needs no regeneration.
        disableDescriptions: true,
      },
    },
  },
};

export default config;
