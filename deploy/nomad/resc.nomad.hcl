# resc-go on Nomad: var.count replicas of one configuration, rolled one at
# a time, each given back its replica id when it is replaced.
#
#   nomad job run -var 'redis_url=redis://redis.service:6379/0' \
#                 -var 'otlp_endpoint=http://otel-collector:4318' \
#                 -var 'image=registry.example/resc-go/resc:v1.2.0' \
#                 deploy/nomad/resc.nomad.hcl
#
# docs/deploy.md explains the choices: the replica id from the allocation
# index, kill_timeout above the drain timeout, no canaries.

variable "redis_url" {
  type        = string
  description = "The Redis of every replica (RESC_REDIS_URL), e.g. redis://redis.service:6379/0. One primary that does not lose acknowledged writes (AOF with fsync)."
}

variable "otlp_endpoint" {
  type        = string
  default     = ""
  description = "Base URL of an OTLP/HTTP receiver (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://otel-collector:4318; empty: no traces."
}

variable "count" {
  type        = number
  default     = 3
  description = "How many replicas share the watchers."
}

variable "image" {
  type        = string
  default     = "resc-go/resc:latest"
  description = "The image built by deploy/Dockerfile (target resc)."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "resc" {
  datacenters = var.datacenters
  type        = "service"

  # One replica at a time: the old one drains, hands back and deregisters
  # (within kill_timeout) before its successor, under the same replica id,
  # starts. No canary: a canary would run beside the allocation of the same
  # index, under the same id, and be refused (exit 1) until it stops.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "10m"
    auto_revert       = true
    canary            = 0
  }

  group "resc" {
    count = var.count

    network {
      port "http" {
        to = 9464
      }
    }

    # A replica that exits 1 because its id is still held (a predecessor
    # killed on a lost node, until its registration expires, 5 s by
    # default) is started again after the delay.
    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "resc"
      provider = "nomad"
      port     = "http"
      tags     = ["metrics"]

      # Ready when its Redis answers PING: gates the rolling update.
      check {
        name     = "resc-ready"
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "resc" {
      driver = "docker"

      # SIGTERM, then RESC_DRAIN_TIMEOUT for the events in flight, then the
      # hand-back and deregistration: kill_timeout leaves 10 s for those.
      # Nomad clients cap it at their max_kill_timeout (30s by default):
      # raise that first before raising these.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        image = var.image
        ports = ["http"]
        args  = ["run", "${NOMAD_TASK_DIR}/resc.hjson"]
      }

      env {
        # Stable across restarts and rolling updates (see the update block):
        # a replacement replays the taken list its predecessor left.
        RESC_REPLICA_ID    = "${NOMAD_JOB_NAME}-${NOMAD_ALLOC_INDEX}"
        RESC_REDIS_URL     = var.redis_url
        RESC_HTTP_ADDR     = "0.0.0.0:9464"
        RESC_DRAIN_TIMEOUT = "20s"
        RESC_LOG           = "info"

        OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
        OTEL_SERVICE_NAME           = "resc"
      }

      # The configuration (resc's introductory example: replace it with
      # yours). $${ is HCL's escape for a literal ${, a resc-go variable.
      template {
        destination = "local/resc.hjson"
        change_mode = "restart"
        data        = <<-EOF
          {
            # redis.url comes from RESC_REDIS_URL.
            listener_channel: events
            watchers: [
              {
                input_queue: global/done
                taken_queue: global/taken
                rules: [
                  {
                    name: TRT computation on data acquisition
                    on: "^acq/(?P<plant>\\w+)/(?P<product>\\w+)$"
                    make: {
                      task: trt/$${plant}/$${product}
                      queue: trt/$${plant}/todo
                      set: trt/$${plant}/todo-set
                    }
                  }
                  {
                    name: report on treatment done
                    on: "^trt/(?P<plant>\\w+)/(?P<product>\\w+)$"
                    make: [
                      {
                        task: report/$${plant}/$${product}
                        queue: report/todo
                      }
                      {
                        task: $${plant}
                        queue: stats/plants
                        set: stats/plants-set
                      }
                    ]
                  }
                ]
              }
            ]
          }
        EOF
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
