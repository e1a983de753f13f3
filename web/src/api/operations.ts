// The operations the pages send, with the shapes they read back (see schema.graphql).

export interface Category {
  id: string;
  slug: string;
  name: string;
  description: string;
  color: string;
  displayOrder: number;
}

export interface Allocation {
  category: Category;
  percentage: number;
}

export interface Submission {
  id: string;
  createdAt: string;
  allocations: Allocation[];
}

export interface CategoryAggregate {
  category: Category;
  averagePercentage: number;
}

export interface AggregateSnapshot {
  version: number;
  totalSubmissions: number;
  updatedAt: string;
  categories: CategoryAggregate[];
}

const CATEGORY_FIELDS = 'id slug name description color displayOrder';
const SNAPSHOT_FIELDS = `version totalSubmissions updatedAt
  categories { category { ${CATEGORY_FIELDS} } averagePercentage }`;
const SUBMISSION_FIELDS = `id createdAt allocations { category { ${CATEGORY_FIELDS} } percentage }`;

export const CATEGORIES = `query Categories { categories { ${CATEGORY_FIELDS} } }`;
export interface CategoriesData {
  categories: Category[];
}

export const SUBMIT = `mutation Submit($input: SubmitAllocationInput!) {
  submitAllocation(input: $input) { submission { id } voterToken }
}`;
export interface SubmitData {
  submitAllocation: { submission: { id: string }; voterToken: string | null };
}
export interface AllocationInput {
  categoryId: string;
  percentage: number;
}

export const RESULT = `query Result($id: ID!) {
  submission(id: $id) { ${SUBMISSION_FIELDS} }
  aggregates { ${SNAPSHOT_FIELDS} }
}`;
export interface ResultData {
  submission: Submission | null;
  aggregates: AggregateSnapshot;
}

export const HISTORY = `query History($first: Int!) { mySubmissions(first: $first) { ${SUBMISSION_FIELDS} } }`;
export interface HistoryData {
  mySubmissions: Submission[];
}

export const AGGREGATES_UPDATED = `subscription Live { aggregatesUpdated { ${SNAPSHOT_FIELDS} } }`;
export interface AggregatesUpdatedData {
  aggregatesUpdated: AggregateSnapshot;
}
