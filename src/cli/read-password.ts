import readline from 'node:readline';
import { Writable } from 'node:stream';

/** A failure the CLI reports as a message and an exit status, without a stack trace. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 | 130 = 1,
  ) {
    super(message);
  }
}

/**
 * Reads the first line of a non-terminal `input` (a pipe or a file): the bytes up to the first
 * line feed, without it (and without a carriage return right before it, the other half of a CRLF
 * line break). Nothing else is removed: no trimming, no normalising. Stops reading after
 * `maxBytes` without a line break, and fails on bytes that are not UTF-8 rather than replacing
 * them, since a replaced character would silently change the password.
 */
export function readFirstLine(input: NodeJS.ReadableStream, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;

    const finish = (lineEnded: boolean) => {
      if (settled) return;
      settled = true;
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onError);
      // Whoever writes to the pipe may keep it open; the CLI has what it needs.
      if ('destroy' in input && typeof input.destroy === 'function') (input as NodeJS.ReadStream).destroy();
      else input.pause();
      if (size === 0 && !lineEnded) {
        reject(new CliFailure('No password on stdin: give it as the first line, or run the command in a terminal to be asked.'));
        return;
      }
      if (size > maxBytes) {
        reject(new CliFailure(`The password must be at most ${maxBytes} bytes long.`));
        return;
      }
      let bytes = Buffer.concat(chunks);
      if (lineEnded && bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
      try {
        resolve(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
      } catch {
        reject(new CliFailure('The password on stdin is not valid UTF-8.'));
      }
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      const eol = buf.indexOf(0x0a);
      const part = eol === -1 ? buf : buf.subarray(0, eol);
      chunks.push(part);
      size += part.length;
      if (eol !== -1) finish(true);
      else if (size > maxBytes) finish(false);
    };
    const onEnd = () => finish(false);
    const onError = (error: Error) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}

/** Asks questions on a terminal and reads the answers without echoing them. */
export interface HiddenPrompt {
  ask(question: string): Promise<string>;
  close(): void;
}

/**
 * A prompt over node:readline whose output is muted while the answer is typed, so the terminal
 * shows nothing (not even asterisks, which would tell the length). History is off, so no answer
 * is kept. Ctrl-C and Ctrl-D reject with a {@link CliFailure}.
 */
export function createHiddenPrompt(input: NodeJS.ReadStream, output: NodeJS.WritableStream): HiddenPrompt {
  let muted = false;
  const sink = new Writable({
    write(chunk, encoding, callback) {
      // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- Writable types its chunks as any; they go to the terminal as they came
      if (!muted) output.write(chunk, encoding);
      callback();
    },
  });
  const rl = readline.createInterface({ input, output: sink, terminal: true, historySize: 0 });
  let pending: ((error: Error) => void) | undefined;
  // Without a SIGINT listener readline would only pause on Ctrl-C and leave the prompt hanging.
  rl.on('SIGINT', () => pending?.(new CliFailure('Cancelled.', 130)));
  rl.on('close', () => pending?.(new CliFailure('Cancelled: no password was typed.')));

  return {
    ask(question) {
      return new Promise<string>((resolve, reject) => {
        output.write(question);
        muted = true;
        const done = () => {
          muted = false;
          pending = undefined;
          rl.removeListener('line', onLine);
          output.write('\n');
        };
        const onLine = (line: string) => {
          done();
          resolve(line);
        };
        pending = (error) => {
          done();
          reject(error);
        };
        rl.once('line', onLine);
      });
    },
    close() {
      pending = undefined;
      rl.close();
    },
  };
}
