// The operations the pages send. Their result and variables types are generated from the
// server's schema (../schema.graphql) by GraphQL Code Generator: after changing an operation
// or the schema, run `npm run codegen` (see codegen.ts). operations.test.ts fails when an
// operation no longer fits the schema, generated.test.ts when the generated file is stale.
//
// Each operation's text carries its fragments, each fragment once: the server rejects a
// document with a fragment missing, repeated or unused.

import type {
  AggregateSnapshotFieldsFragment,
  CategoriesQuery,
  CategoriesQueryVariables,
  CategoryFieldsFragment,
  HistoryQuery,
  HistoryQueryVariables,
  LiveSubscription,
  LiveSubscriptionVariables,
  ResultQuery,
  ResultQueryVariables,
  SubmissionFieldsFragment,
  SubmitMutation,
  SubmitMutationVariables,
} from './generated/operations';

declare const types: unique symbol;

/** An operation's text, tagged with the result and variables types generated for it. */
export type Operation<TData, TVariables> = string & { readonly [types]?: { data: TData; variables: TVariables } };

export type Category = CategoryFieldsFragment;
export type Submission = SubmissionFieldsFragment;
export type AggregateSnapshot = AggregateSnapshotFieldsFragment;

const CATEGORY_FIELDS = /* GraphQL */ `
  fragment CategoryFields on Category {
    id
    slug
    name
    description
    color
    displayOrder
  }
`;

/** Needs CATEGORY_FIELDS. */
const SUBMISSION_FIELDS = /* GraphQL */ `
  fragment SubmissionFields on Submission {
    id
    createdAt
    allocations {
      category {
        ...CategoryFields
      }
      percentage
    }
  }
`;

/** Needs CATEGORY_FIELDS. */
const SNAPSHOT_FIELDS = /* GraphQL */ `
  fragment AggregateSnapshotFields on AggregateSnapshot {
    version
    totalSubmissions
    updatedAt
    categories {
      category {
        ...CategoryFields
      }
      averagePercentage
    }
  }
`;

export const CATEGORIES: Operation<CategoriesQuery, CategoriesQueryVariables> = /* GraphQL */ `
  query Categories {
    categories {
      ...CategoryFields
    }
  }
  ${CATEGORY_FIELDS}
`;

export const SUBMIT: Operation<SubmitMutation, SubmitMutationVariables> = /* GraphQL */ `
  mutation Submit($input: SubmitAllocationInput!) {
    submitAllocation(input: $input) {
      submission {
        id
      }
      voterToken
    }
  }
`;

export const RESULT: Operation<ResultQuery, ResultQueryVariables> = /* GraphQL */ `
  query Result($id: ID!) {
    submission(id: $id) {
      ...SubmissionFields
    }
    aggregates {
      ...AggregateSnapshotFields
    }
  }
  ${SUBMISSION_FIELDS}
  ${SNAPSHOT_FIELDS}
  ${CATEGORY_FIELDS}
`;

export const HISTORY: Operation<HistoryQuery, HistoryQueryVariables> = /* GraphQL */ `
  query History($first: Int!) {
    mySubmissions(first: $first) {
      ...SubmissionFields
    }
  }
  ${SUBMISSION_FIELDS}
  ${CATEGORY_FIELDS}
`;

export const AGGREGATES_UPDATED: Operation<LiveSubscription, LiveSubscriptionVariables> = /* GraphQL */ `
  subscription Live {
    aggregatesUpdated {
      ...AggregateSnapshotFields
    }
  }
  ${SNAPSHOT_FIELDS}
  ${CATEGORY_FIELDS}
`;
