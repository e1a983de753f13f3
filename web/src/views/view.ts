import type { Voter } from '../voter';

export interface AppContext {
  voter: Voter;
  /** Goes to an app path without reloading the page. */
  navigate(path: string): void;
}

/** Renders a page into `root`; returns what to undo when the visitor leaves it. */
export type View = (root: HTMLElement, context: AppContext) => (() => void) | void;
