/**
 * `bonsai synth`: the model generator (tools/synth.ts) as a CLI command.
 */
export { synthCli as synthCommand } from "../tools/synth.ts";
