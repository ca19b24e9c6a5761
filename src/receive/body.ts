// Reading a request body, for every receiver: Content-Encoding (gzip, deflate, zstd) decoded as a
// stream and capped on the DECOMPRESSED size, so a gzip bomb is refused after `max` bytes instead of
// filling memory; text must be valid UTF-8 (a replacement character silently stored would be a
// changed event).
import { ApiError } from '../errors';

// Bun's DecompressionStream also takes 'zstd'.
const DECODERS: Record<string, string> = {
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  zstd: 'zstd',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as UTF-8 text (JSON and NDJSON receivers). */
export async function readBody(req: Request, max: number, limitName: string): Promise<string> {
  const bytes = await readBytes(req, max, limitName);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ApiError('invalid_body', 'Request body is not valid UTF-8');
  }
}

/** The body's bytes, decompressed per Content-Encoding, at most `max` of them (protobuf receivers). */
export async function readBytes(req: Request, max: number, limitName: string): Promise<Uint8Array> {
  const encoding = (req.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  const tooLarge = () => new ApiError('payload_too_large', `Request body exceeds ${max} bytes (${limitName})${encoding === 'identity' ? '' : ' once decompressed'}`);
  let bytes: Uint8Array;
  if (encoding === 'identity' || encoding === '') {
    const declared = Number(req.headers.get('content-length') ?? NaN);
    if (declared > max) throw tooLarge();
    bytes = declared <= max ? await req.bytes() : await readCapped(req.body, max, tooLarge);
    if (bytes.length > max) throw tooLarge();
  } else {
    const format = DECODERS[encoding];
    if (!format) throw new ApiError('unsupported_media_type', `Content-Encoding '${encoding}' is not supported; use gzip, deflate, zstd or none`);
    if (!req.body) bytes = new Uint8Array(0);
    else {
      try {
        bytes = await readCapped(req.body.pipeThrough(new DecompressionStream(format as 'gzip')), max, tooLarge);
      } catch (e) {
        if (e instanceof ApiError) throw e;
        throw new ApiError('invalid_body', `Request body is not valid ${encoding} data`);
      }
    }
  }
  return bytes;
}

/** Reads a stream into memory, giving up (and cancelling the stream) as soon as it passes `max`. */
async function readCapped(stream: ReadableStream<Uint8Array> | null, max: number, tooLarge: () => ApiError): Promise<Uint8Array> {
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
