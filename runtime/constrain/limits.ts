/**
 * Budgets of structured output (grammars, JSON schemas, tool calls), in one place so that the
 * compiler, the matcher, the README's "Limits" table and the tests agree. Every budget counts
 * work units or sizes, never wall-clock time, so whether a request is accepted does not depend
 * on how loaded the machine is. A request over a budget is refused with BAD_REQUEST naming the
 * limit (the name of the constant below), and the scheduler's other requests go on.
 *
 * @module
 */

/** Longest grammar text, in UTF-16 code units. */
export const MAX_GRAMMAR_CHARS = 64 * 1024;
/** Largest bound of a repetition `{m,n}` in a grammar. */
export const MAX_REPEAT = 10000;
/** Largest string or array bound (`maxLength`, `maxItems`, ...) taken from a JSON schema. */
export const MAX_SCHEMA_BOUND = 4096;
/** Deepest nesting of groups in a grammar, or of subschemas in a JSON schema. */
export const MAX_NESTING = 64;
/** Most elements of a compiled grammar, repetitions expanded (bounds the compile's memory). */
export const MAX_GRAMMAR_ELEMENTS = 100_000;
/** Work units (element visits) the grammar checks may take: a few tens of ms at most. */
export const MAX_COMPILE_WORK = 20_000_000;
/** Most parse stacks alive at once in the matcher (an ambiguous grammar multiplies them). */
export const MAX_MATCH_STACKS = 4096;
/** Most stack nodes one matcher may build (memory). */
export const MAX_MATCH_NODES = 1_000_000;
/** Most states one matcher may build (each holds a 1 KiB transition row). */
export const MAX_MATCH_STATES = 200_000;
/** Most stack entries summed over all the states of one matcher (memory of the state sets). */
export const MAX_MATCH_STATE_STACKS = 4_000_000;
/**
 * Work units (stack expansions and checks) one sequence may spend choosing one token. The
 * schemas of the test suite peak at ~150k (the first walk of the token trie on a fresh
 * matcher); a unit costs roughly 1-3 microseconds.
 */
export const MAX_TOKEN_WORK = 1_000_000;
