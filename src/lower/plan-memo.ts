/**
 * Plans and operand layouts made once per device and problem. A model plans
 * the same problems again and again (a layer's projections, every layer of a
 * transformer, the blocks of a ResNet, and each op twice: createInput, then
 * its lowering), and the planners' searches and the layouts' walks over
 * every element were much of a compile's lowering time. What is kept must
 * depend only on the device and the key, and never be changed by its users.
 */
import type { DeviceSpec } from '../../sim/device.js';

export class DeviceMemo<T> {
  private readonly byDevice = new WeakMap<DeviceSpec, Map<string, T>>();

  /** The value made for `key` on `device`, made now by `make` the first time. */
  get(device: DeviceSpec, key: string, make: () => T): T {
    let byKey = this.byDevice.get(device);
    if (!byKey) this.byDevice.set(device, (byKey = new Map()));
    if (byKey.has(key)) return byKey.get(key)!;
    const made = make();
    byKey.set(key, made);
    return made;
  }
}
