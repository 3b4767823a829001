import http, { STATUS_CODES } from 'node:http';
import { PROBLEM_TYPE, type Problem } from './problem';

/**
 * The problem document for a request Node's HTTP parser (or its request timer) refused before
 * the app saw it, by the error's code: Node's own choice of status (`socketOnError` in
 * `_http_server.js`: 431 for a header overflow, 413 for chunk extensions, 408 for a timeout,
 * 400 for anything else), with a body.
 */
export function parserRefusal(code: string | undefined): Problem {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        type: 'about:blank',
        title: STATUS_CODES[431] as string,
        status: 431,
        detail: `The request's header section is larger than the ${http.maxHeaderSize} bytes this server reads.`,
      };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return {
        type: 'urn:problem-type:payload_too_large',
        title: STATUS_CODES[413] as string,
        status: 413,
        detail: 'The chunk extensions of the request body are too large.',
        code: 'payload_too_large',
      };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        type: 'about:blank',
        title: STATUS_CODES[408] as string,
        status: 408,
        detail: 'The request did not arrive in time (HEADERS_TIMEOUT for its head, REQUEST_TIMEOUT for the whole of it).',
      };
    default:
      return {
        type: 'urn:problem-type:invalid_request',
        title: STATUS_CODES[400] as string,
        status: 400,
        detail: 'The request is not valid HTTP/1.1: its request line, a header or its chunked body is malformed.',
        code: 'invalid_request',
      };
  }
}

/**
 * The whole HTTP/1.1 response for {@link parserRefusal}, written straight to the socket (a
 * `clientError` has no response object): problem+json, never cached, and `Connection: close`,
 * since the parser cannot go on reading this connection.
 */
export function parserRefusalResponse(code: string | undefined, now = new Date()): { status: number; bytes: string } {
  const problem = parserRefusal(code);
  const body = JSON.stringify(problem);
  const head = [
    `HTTP/1.1 ${problem.status} ${problem.title}`,
    `Content-Type: ${PROBLEM_TYPE}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
    `Date: ${now.toUTCString()}`,
    'Connection: close',
  ];
  return { status: problem.status, bytes: `${head.join('\r\n')}\r\n\r\n${body}` };
}
