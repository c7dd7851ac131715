/** The driver registry: built-in drivers now, remote plugins later, one shape. */
import { CnmError } from '../errors.js';
import { BridgeDriver } from './bridge.js';
import type { Driver, DriverContext } from './driver.js';
import { NoopDriver } from './noop.js';

export class DriverRegistry {
  private readonly drivers = new Map<string, Driver>();

  constructor(ctx: DriverContext) {
    this.register(new BridgeDriver(ctx));
    this.register(new NoopDriver('host', false));
    this.register(new NoopDriver('null', true));
  }

  register(d: Driver): void {
    this.drivers.set(d.name, d);
  }

  get(name: string): Driver {
    const d = this.drivers.get(name);
    if (!d) {
      throw new CnmError('ERR_UNKNOWN_DRIVER', `unknown network driver "${name}": available drivers are ${[...this.drivers.keys()].join(', ')}`, {
        value: name,
      });
    }
    return d;
  }

  names(): string[] {
    return [...this.drivers.keys()];
  }
}
