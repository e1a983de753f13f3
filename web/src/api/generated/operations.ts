/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
export type AllocationInput = {
  categoryId: string | number;
  percentage: number;
};

export type SubmitAllocationInput = {
  allocations: Array<AllocationInput>;
  idempotencyKey?: string | null | undefined;
};

export type TrendBucket = 'DAY' | 'HOUR' | 'MINUTE';

export type CategoryFieldsFragment = {
  id: string;
  slug: string;
  name: string;
  description: string;
  color: string;
  displayOrder: number;
};

export type SubmissionFieldsFragment = {
  id: string;
  createdAt: string;
  allocations: Array<{
    percentage: number;
    category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
  }>;
};

export type AggregateSnapshotFieldsFragment = {
  version: number;
  totalSubmissions: number;
  updatedAt: string;
  categories: Array<{
    averagePercentage: number;
    category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
  }>;
};

export type CategoriesQueryVariables = Exact<{ [key: string]: never }>;

export type CategoriesQuery = {
  categories: Array<{
    id: string;
    slug: string;
    name: string;
    description: string;
    color: string;
    displayOrder: number;
  }>;
};

export type SubmitMutationVariables = Exact<{
  input: SubmitAllocationInput;
}>;

export type SubmitMutation = { submitAllocation: { voterToken: string | null; submission: { id: string } } };

export type ResultQueryVariables = Exact<{
  id: string | number;
}>;

export type ResultQuery = {
  submission: {
    id: string;
    createdAt: string;
    allocations: Array<{
      percentage: number;
      category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
    }>;
  } | null;
  aggregates: {
    version: number;
    totalSubmissions: number;
    updatedAt: string;
    categories: Array<{
      averagePercentage: number;
      category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
    }>;
  };
};

export type HistoryQueryVariables = Exact<{
  first: number;
}>;

export type HistoryQuery = {
  mySubmissions: Array<{
    id: string;
    createdAt: string;
    allocations: Array<{
      percentage: number;
      category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
    }>;
  }>;
};

export type LiveSubscriptionVariables = Exact<{ [key: string]: never }>;

export type LiveSubscription = {
  aggregatesUpdated: {
    version: number;
    totalSubmissions: number;
    updatedAt: string;
    categories: Array<{
      averagePercentage: number;
      category: { id: string; slug: string; name: string; description: string; color: string; displayOrder: number };
    }>;
  };
};

export type DistributionQueryVariables = Exact<{
  id: string | number;
  buckets: number;
}>;

export type DistributionQuery = {
  submission: {
    id: string;
    allocations: Array<{ percentage: number; percentileRank: number | null; category: { id: string } }>;
  } | null;
  aggregates: {
    version: number;
    totalSubmissions: number;
    categories: Array<{
      median: number | null;
      zeroShare: number | null;
      category: { id: string };
      quartiles: { q1: number; q3: number } | null;
      histogram: Array<{ from: number; to: number; count: number }>;
    }>;
  };
};

export type TrendQueryVariables = Exact<{
  bucket: TrendBucket;
  from?: string | null | undefined;
}>;

export type TrendQuery = {
  categories: Array<{
    id: string;
    slug: string;
    name: string;
    description: string;
    color: string;
    displayOrder: number;
  }>;
  aggregatesTrend: {
    version: number;
    bucket: TrendBucket;
    from: string;
    to: string;
    points: Array<{
      start: string;
      end: string;
      submissions: number;
      totalSubmissions: number;
      categories: Array<{ averagePercentage: number; category: { id: string } }>;
    }>;
  };
};
