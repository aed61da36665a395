import type { TestProject } from 'vitest/node';
import { startEmulator } from '../../scripts/emulator.js';

declare module 'vitest' {
  export interface ProvidedContext {
    emulatorHost: string;
  }
}

export default async function setup(project: TestProject) {
  const emulator = await startEmulator();
  project.provide('emulatorHost', emulator.host);
  return async () => {
    await emulator.stop();
  };
}
