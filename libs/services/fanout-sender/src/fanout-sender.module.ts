import { Module } from '@nestjs/common';

/**
 * fanout-sender: outbound federation, per-destination queues, transactions and retries (DESIGN).
 * It serves no HTTP routes: its process exposes only the health probes. Its bus handlers and
 * providers are added here as they are built.
 */
@Module({})
export class FanoutSenderModule {}
