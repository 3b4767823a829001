import { createLoginLimiter } from '../../src/services/login-limiter';

// Which modules of rate-limiter-flexible get loaded: each mock records its name when required.
const mockLoaded = new Set<string>();
jest.mock('rate-limiter-flexible', () => {
  mockLoaded.add('index');
  return jest.requireActual('rate-limiter-flexible');
});
jest.mock('rate-limiter-flexible/lib/RateLimiterRedis', () => {
  mockLoaded.add('RateLimiterRedis');
  return jest.requireActual('rate-limiter-flexible/lib/RateLimiterRedis');
});

describe('the login limiter loads only the stores it uses', () => {
  test('when it counts in memory, then neither the package index (every store it supports) nor the Redis store is loaded, and it still limits', async () => {
    const limiter = createLoginLimiter({ ipPoints: 2, namePoints: 2, window: 60 });
    await limiter.check('127.0.0.1', 'alice');
    await limiter.fail('127.0.0.1', 'alice');
    await limiter.fail('127.0.0.1', 'alice');
    await expect(limiter.check('127.0.0.1', 'alice')).rejects.toMatchObject({ code: 'rate_limited', headers: { 'Retry-After': '60' } });
    await expect(limiter.fail('127.0.0.1', 'alice')).rejects.toMatchObject({ code: 'rate_limited' });
    expect([...mockLoaded]).toEqual([]);
  });
});
