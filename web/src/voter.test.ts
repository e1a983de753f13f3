import { describe, expect, it } from 'vitest';
import { type KeyValueStore, Voter } from './voter';

function memoryStorage(): KeyValueStore & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  return {
    entries,
    getItem: (key) => entries.get(key) ?? null,
    setItem: (key, value) => void entries.set(key, value),
    removeItem: (key) => void entries.delete(key),
  };
}

describe('Voter', () => {
  it('keeps nothing in storage before the visitor decides', () => {
    const storage = memoryStorage();
    const voter = new Voter(storage);
    voter.remember('tbv1_a');
    expect(voter.consent()).toBe('undecided');
    expect(voter.token()).toBe('tbv1_a');
    expect(storage.entries.size).toBe(0);
  });

  it('stores the pending token when the visitor accepts', () => {
    const storage = memoryStorage();
    const voter = new Voter(storage);
    voter.remember('tbv1_a');
    voter.accept();
    expect(new Voter(storage).token()).toBe('tbv1_a');
    expect(new Voter(storage).consent()).toBe('accepted');
  });

  it('keeps no token after a decline, not even in memory', () => {
    const storage = memoryStorage();
    const voter = new Voter(storage);
    voter.remember('tbv1_a');
    voter.decline();
    voter.remember('tbv1_b');
    expect(voter.token()).toBeNull();
    expect([...storage.entries.keys()]).toEqual(['tax-budget.consent']);
  });

  it('asks again without losing a kept token until the visitor declines', () => {
    const storage = memoryStorage();
    const voter = new Voter(storage);
    voter.accept();
    voter.remember('tbv1_a');
    voter.reconsider();
    expect(voter.consent()).toBe('undecided');
    expect(new Voter(storage).token()).toBe('tbv1_a');
    voter.accept();
    expect(storage.entries.get('tax-budget.voterToken')).toBe('tbv1_a');
    voter.reconsider();
    voter.decline();
    expect(voter.token()).toBeNull();
    expect(storage.entries.has('tax-budget.voterToken')).toBe(false);
  });

  it('forgets a token the server no longer knows', () => {
    const storage = memoryStorage();
    const voter = new Voter(storage);
    voter.accept();
    voter.remember('tbv1_a');
    voter.forget();
    expect(voter.token()).toBeNull();
    expect(voter.consent()).toBe('accepted');
  });

  it('works without storage', () => {
    const throwing: KeyValueStore = {
      getItem: () => {
        throw new Error('blocked');
      },
      setItem: () => {
        throw new Error('blocked');
      },
      removeItem: () => {
        throw new Error('blocked');
      },
    };
    const voter = new Voter(throwing);
    voter.remember('tbv1_a');
    expect(voter.token()).toBe('tbv1_a');
    voter.accept();
    expect(voter.token()).toBeNull();
  });

  it('tells listeners about changes', () => {
    const voter = new Voter(memoryStorage());
    let calls = 0;
    const stop = voter.onChange(() => calls++);
    voter.accept();
    voter.remember('tbv1_a');
    stop();
    voter.forget();
    expect(calls).toBe(2);
  });
});
