import Bowser from 'bowser';
import { LRUCache } from 'lru-cache';

/** What the account pages show of a user agent: the browser and the operating system, when it tells them. */
export interface AgentSummary {
  browser: string | null;
  os: string | null;
}

const NONE: AgentSummary = Object.freeze({ browser: null, os: null });
/** A user's sessions share a few user agents: each is parsed once. */
const parsed = new LRUCache<string, AgentSummary>({ max: 500 });

const join = (...parts: (string | undefined)[]) => {
  const text = parts
    .filter((p) => p !== undefined && p !== '')
    .join(' ')
    .slice(0, 128);
  return text === '' ? null : text;
};

/** The browser and OS bowser reads from `userAgent`; nulls for none, an empty one, or one it cannot read. */
export function summariseAgent(userAgent: string | null): AgentSummary {
  if (userAgent === null || userAgent.trim() === '') return NONE;
  let summary = parsed.get(userAgent);
  if (summary === undefined) {
    try {
      const result = Bowser.parse(userAgent);
      summary = { browser: join(result.browser.name, result.browser.version), os: join(result.os.name, result.os.versionName ?? result.os.version) };
    } catch {
      // bowser throws on what it cannot read; the page shows the raw user agent instead.
      summary = NONE;
    }
    parsed.set(userAgent, summary);
  }
  return summary;
}
