import { Module } from '@nestjs/common';
import { FanoutSenderService } from './fanout-sender.provider.js';

/**
 * fanout-sender: outbound federation, per-destination queues, transactions and retries (DESIGN).
 * It serves no HTTP routes: its process exposes only the health probes.
 */
@Module({ providers: [FanoutSenderService] })
export class FanoutSenderModule {}
