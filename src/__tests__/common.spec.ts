import { AidevopsApi } from '../common/api';
import { apiPlugin, IAidevopsApi } from '../common/token';

// Node's fs and path, typed by hand: the project has no @types/node, and these specs run under Node.
declare const require: (name: string) => any;
declare const __dirname: string;
const { readdirSync, readFileSync, statSync } = require('fs') as {
  readdirSync(path: string): string[];
  readFileSync(path: string, encoding: string): string;
  statSync(path: string): { isDirectory(): boolean };
};
const { join } = require('path') as { join(...parts: string[]): string };

const SRC = join(__dirname, '..');

/** The extension's own source files (tests left out). */
function sources(dir = SRC): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      found.push(...(name === '__tests__' ? [] : sources(path)));
    } else if (path.endsWith('.ts') || path.endsWith('.tsx')) {
      found.push(path);
    }
  }
  return found;
}

const holding = (pattern: RegExp) =>
  sources()
    .filter(path => pattern.test(readFileSync(path, 'utf-8')))
    .map(path => path.slice(SRC.length + 1));

describe('one AidevopsApi for the extension', () => {
  it('is provided by the api plugin under the IAidevopsApi token', () => {
    expect(apiPlugin.provides).toBe(IAidevopsApi);
    expect(apiPlugin.autoStart).toBe(true);
    expect(apiPlugin.activate({} as any)).toBeInstanceOf(AidevopsApi);
  });

  it('is built only there, and each panel plugin requires the token', () => {
    expect(holding(/new AidevopsApi\(/)).toEqual([join('common', 'token.ts')]);
    // Every panel plugin is made by panelPlugin(), which requires the token.
    expect(readFileSync(join(SRC, 'common', 'plugin.ts'), 'utf-8')).toMatch(/requires: \[IAidevopsApi\]/);
    const plugins = [join('deploy', 'plugin.ts'), join('runs', 'plugin.ts'), join('monitor', 'plugin.ts')];
    for (const plugin of plugins) {
      expect(readFileSync(join(SRC, plugin), 'utf-8')).toMatch(/Plugin = panelPlugin\(/);
    }
  });

  it('has one button look: the class list lives in common/dom.ts and the React Button uses it', () => {
    expect(holding(/jp-Button jp-mod-styled/)).toEqual([join('common', 'dom.ts')]);
    expect(holding(/BUTTON_CLASS/).sort()).toEqual([join('common', 'button.tsx'), join('common', 'dom.ts')]);
  });

  it('has one polled-model base: the only Poll is built in common/polledmodel.ts', () => {
    expect(holding(/new Poll\(/)).toEqual([join('common', 'polledmodel.ts')]);
    for (const model of [join('deploy', 'model.ts'), join('monitor', 'model.ts')]) {
      expect(readFileSync(join(SRC, model), 'utf-8')).toMatch(/extends PolledModel\b/);
    }
  });
});
