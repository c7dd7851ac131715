// The addon's contract with the TypeScript layer: the error codes netcore can
// reject with come from the Rust ErrorCode enum (errorCodes()), and each is one
// ts/errors.ts knows, so a native rejection keeps its code as a CnmError.
// (ts/native-api.ts proves the same at compile time from index.d.ts.)
import test from 'ava';

import * as binding from '../index.js';
import { CnmError, ErrorCodes } from '../ts/errors.js';
import { native } from '../ts/native.js';

test('every native error code is one of ErrorCodes', (t) => {
  const codes = binding.errorCodes();
  t.true(codes.length >= 10);
  t.is(new Set(codes).size, codes.length, 'no code twice');
  for (const code of ['ERR_PORT_ALLOCATED', 'ERR_FAULT_INJECTED', 'ERR_KERNEL']) t.true(codes.includes(code as binding.NativeErrorCode), code);
  const unknown = codes.filter((c) => !(c in ErrorCodes));
  t.deepEqual(unknown, [], 'codes netcore has and ts/errors.ts lacks');
});

test('a native rejection arrives as a CnmError with its code and fields', async (t) => {
  const err = await t.throwsAsync(native.netnsCookie('a/b'));
  t.true(err instanceof CnmError);
  t.is((err as CnmError).code, 'ERR_INVALID_ARGUMENT');
  t.is((err as CnmError).details.netns, 'a/b');
  t.regex(err!.message, /invalid netns name/);
});
