// Every domain gets a virtio RNG fed from the host's, so a fresh guest has
// entropy at once (TLS, ssh keys) instead of waiting for interrupts under TCG.

export function entropyDeviceArgs(): string[] {
  return ['-object', 'rng-random,id=rng0,filename=/dev/urandom', '-device', 'virtio-rng-pci,rng=rng0,id=rng0-dev'];
}
