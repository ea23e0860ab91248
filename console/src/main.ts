/// <reference lib="dom" />
/** The console's entry point (bundled by scripts/build.ts into dist/console/console.js). */
import { ErasureConsole } from './app.ts';

customElements.define('erasure-console', ErasureConsole);
