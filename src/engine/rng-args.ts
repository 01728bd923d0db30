// rng=1 gives a domain a virtio RNG fed from the host's, for guests whose CPU has no
// RDRAND (the default guest's has: its kernel's RNG is ready at once). Off by default:
// on pc every PCI device costs the guest an ACPI _PRT evaluation at boot (~0.2 s under TCG).

export function entropyDeviceArgs(): string[] {
  return ['-object', 'rng-random,id=rng0,filename=/dev/urandom', '-device', 'virtio-rng-pci,rng=rng0,id=rng0-dev'];
}
