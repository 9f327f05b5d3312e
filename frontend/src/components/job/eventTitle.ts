/** Words for each event type; an unknown type shows as it is. */
const TITLES: Record<string, string> = {
  created: 'Created',
  queued: 'Queued',
  started: 'Started',
  dataset_built: 'Dataset built',
  epoch_finished: 'Epoch finished',
  validation_finished: 'Validation',
  checkpoint_saved: 'Checkpoint saved',
  requeued: 'Requeued',
  evaluation_finished: 'Evaluation finished',
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
  webhook_delivered: 'Webhook delivered',
  webhook_retrying: 'Webhook retrying',
  webhook_failed: 'Webhook failed',
}

export function eventTitle(type: string): string {
  return TITLES[type] ?? type.replaceAll('_', ' ')
}
