// Every operation the app sends, validated against the server's published schema
// (../schema.graphql, kept equal to the server's code by a Rust test): a schema change that
// breaks a page fails here instead of in a visitor's browser.

import { readFileSync } from 'node:fs';
import {
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  buildASTSchema,
  buildSchema,
  parse,
  validate,
  visit,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import * as operations from './operations';

const SDL = readFileSync(new URL('../../../schema.graphql', import.meta.url), 'utf8');
const SCHEMA = buildSchema(SDL);

/** The validation messages for `text` against `schema`; none when it fits. */
function problems(text: string, schema: GraphQLSchema = SCHEMA): string[] {
  return validate(schema, parse(text)).map((error) => error.message);
}

/** The exported operation texts (the module's only runtime exports). */
const sent = Object.entries(operations).filter((entry): entry is [string, string] => typeof entry[1] === 'string');

/** The schema with one field of one object type left out. */
function schemaWithout(type: string, field: string): GraphQLSchema {
  return buildASTSchema(
    visit(parse(SDL), {
      ObjectTypeDefinition: (node) =>
        node.name.value === type ? { ...node, fields: node.fields?.filter((f) => f.name.value !== field) } : undefined,
    }),
  );
}

function operationOf(text: string): OperationDefinitionNode {
  const definitions = parse(text).definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  expect(definitions).toHaveLength(1);
  return definitions[0]!;
}

describe('operations against schema.graphql', () => {
  it('covers the queries, the mutation and the subscription', () => {
    const names = sent.map(([, text]) => `${operationOf(text).operation} ${operationOf(text).name?.value}`);
    expect(names.sort()).toEqual(
      expect.arrayContaining([
        'mutation Submit',
        'query Categories',
        'query Distribution',
        'query History',
        'query Result',
        'query Trend',
        'subscription Live',
      ]),
    );
  });

  it.each(sent)('%s is valid', (_, text) => {
    expect(problems(text)).toEqual([]);
  });

  it('rejects a field the schema does not have', () => {
    expect(problems('query { aggregates { nope } }')).toEqual([
      'Cannot query field "nope" on type "AggregateSnapshot".',
    ]);
  });

  it('fails the app when the schema drops a field it reads', () => {
    expect(problems(operations.CATEGORIES, schemaWithout('Category', 'displayOrder'))).toEqual([
      'Cannot query field "displayOrder" on type "Category".',
    ]);
  });
});
