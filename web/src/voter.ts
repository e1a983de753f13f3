// The voter token and the visitor's consent to keep it. The token links submissions to one
// anonymous voter (that is what History shows); it is kept in the browser only after the
// visitor said yes. Until they decide, a token the server returned lives in memory only.

export type Consent = 'accepted' | 'declined' | 'undecided';

/** The part of `Storage` this needs; `localStorage` in the browser. */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const CONSENT_KEY = 'tax-budget.consent';
const TOKEN_KEY = 'tax-budget.voterToken';

export class Voter {
  private pending: string | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly storage: KeyValueStore | null) {}

  consent(): Consent {
    const value = this.read(CONSENT_KEY);
    return value === 'accepted' || value === 'declined' ? value : 'undecided';
  }

  /** The token to send, if this browser has one it may use. */
  token(): string | null {
    switch (this.consent()) {
      case 'accepted':
        return this.read(TOKEN_KEY);
      case 'undecided':
        // A stored token while undecided was kept under an earlier yes (see `reconsider`).
        return this.pending ?? this.read(TOKEN_KEY);
      case 'declined':
        return null;
    }
  }

  accept(): void {
    this.write(CONSENT_KEY, 'accepted');
    if (this.pending) this.write(TOKEN_KEY, this.pending);
    this.pending = null;
    this.changed();
  }

  decline(): void {
    this.write(CONSENT_KEY, 'declined');
    this.remove(TOKEN_KEY);
    this.pending = null;
    this.changed();
  }

  /**
   * Asks again, e.g. from the footer's "Privacy choice". A token kept under an earlier yes stays
   * (closing the tab without answering must not lose the history) until the visitor declines.
   */
  reconsider(): void {
    this.remove(CONSENT_KEY);
    this.changed();
  }

  /** Called with the token a submission returned (only new voters get one). */
  remember(token: string | null): void {
    if (!token) return;
    switch (this.consent()) {
      case 'accepted':
        this.write(TOKEN_KEY, token);
        break;
      case 'undecided':
        this.pending = token;
        break;
      case 'declined':
        break;
    }
    this.changed();
  }

  /** Drops a token the server no longer knows. */
  forget(): void {
    this.remove(TOKEN_KEY);
    this.pending = null;
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  // Storage can be missing or throw (private modes, blocked cookies): the app then behaves as
  // if nothing was kept rather than failing.
  private read(key: string): string | null {
    try {
      return this.storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  private write(key: string, value: string): void {
    try {
      this.storage?.setItem(key, value);
    } catch {
      // Nothing to do: see `read`.
    }
  }

  private remove(key: string): void {
    try {
      this.storage?.removeItem(key);
    } catch {
      // Nothing to do: see `read`.
    }
  }
}

export function browserStorage(): KeyValueStore | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
