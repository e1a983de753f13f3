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
  DistributionQuery,
  DistributionQueryVariables,
  HistoryQuery,
  HistoryQueryVariables,
  LiveSubscription,
  LiveSubscriptionVariables,
  ResultQuery,
  ResultQueryVariables,
  SubmissionFieldsFragment,
  SubmitMutation,
  SubmitMutationVariables,
  TrendQuery,
  TrendQueryVariables,
} from './generated/operations';

declare const types: unique symbol;

/** An operation's text, tagged with the result and variables types generated for it. */
export type Operation<TData, TVariables> = string & { readonly [types]?: { data: TData; variables: TVariables } };

export type Category = CategoryFieldsFragment;
export type Submission = SubmissionFieldsFragment;
export type AggregateSnapshot = AggregateSnapshotFieldsFragment;
export type Distribution = DistributionQuery;
export type Trend = TrendQuery['aggregatesTrend'];
export type TrendPoint = Trend['points'][number];

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

// The result page's distributions: a query of its own rather than more fields in RESULT, so
// the comparison shows even when this part fails, and so it can be read again when the
// average moves without reading the submission's categories again. Not in the subscription:
// every live viewer would receive histograms they do not show.
export const DISTRIBUTION: Operation<DistributionQuery, DistributionQueryVariables> = /* GraphQL */ `
  query Distribution($id: ID!, $buckets: Int!) {
    submission(id: $id) {
      id
      allocations {
        category {
          id
        }
        percentage
        percentileRank
      }
    }
    aggregates {
      version
      totalSubmissions
      categories {
        category {
          id
        }
        median
        quartiles {
          q1
          q3
        }
        zeroShare
        histogram(buckets: $buckets) {
          from
          to
          count
        }
      }
    }
  }
`;

// Points name their categories by id only: up to 1500 points would otherwise repeat every
// category's name, description and colour.
export const TREND: Operation<TrendQuery, TrendQueryVariables> = /* GraphQL */ `
  query Trend($bucket: TrendBucket!, $from: DateTime) {
    categories {
      ...CategoryFields
    }
    aggregatesTrend(bucket: $bucket, from: $from) {
      version
      bucket
      from
      to
      points {
        start
        end
        submissions
        totalSubmissions
        categories {
          category {
            id
          }
          averagePercentage
        }
      }
    }
  }
  ${CATEGORY_FIELDS}
`;
