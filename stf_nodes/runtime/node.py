"""`Node`: the rclpy-shaped API of the runtime.

```python
from stf_nodes import runtime
from stf_msgs.msg import MotorState

runtime.init()
node = runtime.Node('talker', namespace='factory_1')
pub = node.create_publisher(MotorState, '/stf/motor', 10)
node.create_timer(0.1, lambda: pub.publish(MotorState(motor_id='CONV_M1')))
runtime.spin(node)
```

A node declares a liveliness token `NN` when created; each entity declares its own. Several
nodes may share one context (one Zenoh session): that is composition. Every node declares
`use_sim_time`, serves the parameter services, announces parameter changes on
`/parameter_events`, and logs to stderr and `/rosout`. A node whose name is already in the
graph warns at start (as rcl does): two nodes of one name share parameter services and confuse
every tool.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from stf_nodes import interfaces
from stf_nodes.runtime import names
from stf_nodes.runtime.arguments import parse_ros_args
from stf_nodes.runtime.clock import Clock, Time
from stf_nodes.runtime.context import Context, get_default_context
from stf_nodes.runtime.entities import (
    Client,
    GuardCondition,
    Publisher,
    Service,
    Subscription,
    Timer,
)
from stf_nodes.runtime.logger import LOG_LEVELS, Logger
from stf_nodes.runtime.parameters import (
    Parameter,
    ParameterError,
    ParameterType,
    descriptor_msg,
    load_parameter_file,
    names_matching,
    out_of_range,
    parameter_event,
    type_of,
    value_from_msg,
)
from stf_nodes.runtime.qos import (
    QoSProfile,
    as_profile,
    qos_profile_clock,
    qos_profile_parameter_events,
    qos_profile_rosout,
    qos_profile_services_default,
)


class Node:
    """A ROS 2 node on Zenoh (see module docstring)."""

    def __init__(
        self,
        node_name: str,
        *,
        namespace: str | None = None,
        context: Context | None = None,
        cli_args: Sequence[str] | None = None,
        parameter_overrides: Sequence[Parameter] | None = None,
        allow_undeclared_parameters: bool = False,
        automatically_declare_parameters_from_overrides: bool = False,
        start_parameter_services: bool = True,
        start_parameter_event_publisher: bool = True,
        enable_rosout: bool = True,
    ) -> None:
        self.context = context or get_default_context()
        process_args = self.context.arguments
        local_args = parse_ros_args(['--ros-args', *cli_args]) if cli_args else None
        self._remaps = {**process_args.remaps, **(local_args.remaps if local_args else {})}
        self._name = names.validate_node_name(
            (local_args and local_args.node_name) or process_args.node_name or node_name
        )
        self._namespace = names.normalize_namespace(
            (local_args and local_args.namespace) or process_args.namespace or namespace or ''
        )
        self.node_id = self.context.next_id()
        self.destroyed = False
        self._lock = threading.RLock()
        self._executor: Any = None
        self._backlog: list[Any] = []
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.services: list[Service] = []
        self.clients: list[Client] = []
        self.timers: list[Timer] = []
        self.guards: list[GuardCondition] = []
        self._clock = Clock()
        self._clock.add_listener(self._on_clock_change)
        self._clock_subscription: Subscription | None = None

        self._parameters: dict[str, Any] = {}
        self._descriptors: dict[str, Any] = {}
        self._shown: dict[str, Callable[[Any], Any]] = {}  # secrets: what the graph sees
        self._allow_undeclared = allow_undeclared_parameters
        self._on_set_callbacks: list[Callable[[list[Parameter]], Any]] = []
        self.callback_errors = 0
        self._overrides = self._collect_overrides(process_args, local_args, parameter_overrides)

        level_name = (local_args and local_args.log_level) or process_args.log_level or 'INFO'
        self._logger = Logger(
            self,
            self.get_fully_qualified_name().lstrip('/').replace('/', '.'),
            LOG_LEVELS.get(level_name.upper(), 20),
        )
        # Hidden nodes (the CLI's) are unique anyway; others look before their own token exists.
        name_taken = not self._name.startswith('_') and self._name_taken()
        self._token = self.context.session.liveliness().declare_token(
            names.node_token(
                domain_id=self.context.domain_id,
                zid=self.context.zid,
                node_id=self.node_id,
                enclave=self.context.arguments.enclave,
                namespace=self._namespace,
                node_name=self._name,
            )
        )
        if enable_rosout:
            self._logger._publisher = self.create_publisher(
                interfaces.get_message_class('rcl_interfaces/msg/Log'),
                '/rosout',
                qos_profile_rosout,
            )
        if name_taken:
            self._logger.warning(
                f'a node named {self.get_fully_qualified_name()} is already in the graph: '
                'nodes sharing a name share its parameter services and confuse every tool; give '
                'this one another name (--ros-args -r __node:=NAME) or namespace '
                '(-r __ns:=/NAMESPACE)'
            )
        self._parameter_events: Publisher | None = None
        if start_parameter_event_publisher:
            self._parameter_events = self.create_publisher(
                interfaces.get_message_class('rcl_interfaces/msg/ParameterEvent'),
                '/parameter_events',
                qos_profile_parameter_events,
            )
        self.declare_parameter('use_sim_time', False)
        self._apply_sim_time(self.get_parameter('use_sim_time').value)
        if automatically_declare_parameters_from_overrides:
            for name, value in self._overrides.items():
                if name not in self._parameters:
                    self.declare_parameter(name, value)
        if start_parameter_services:
            self._start_parameter_services()

    # -- identity -------------------------------------------------------------------------

    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return self._namespace.rstrip('/') + '/' + self._name

    def _name_taken(self) -> bool:
        graph_nodes = self.context.graph.node_names_and_namespaces()
        return (self._name, self._namespace) in graph_nodes

    def callback_failed(self, item: Any, error: Exception) -> bool:
        """A callback of this node raised (the executor calls this wherever it ran): log it
        with its traceback and count it in ``callback_errors``. True when it must end the
        spin (``STF_CALLBACK_ERRORS=raise``, rclpy's behaviour); by default the node goes on."""
        self.callback_errors += 1
        what = getattr(item, 'name', type(item).__name__.lower())
        trace = ''.join(traceback.format_exception(error)).rstrip()
        self.get_logger().error(f'callback of {what} raised:\n{trace}')
        return os.environ.get('STF_CALLBACK_ERRORS', 'log') == 'raise'

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def now(self) -> Time:
        return self._clock.now()

    def resolve_name(self, name: str) -> str:
        full = names.resolve_name(name, namespace=self._namespace, node_name=self._name)
        remapped = self._remaps.get(full, self._remaps.get(name))
        if remapped is None:
            return full
        return names.resolve_name(remapped, namespace=self._namespace, node_name=self._name)

    # -- entities -------------------------------------------------------------------------

    def create_publisher(self, msg_type: type, topic: str, qos: QoSProfile | int) -> Publisher:
        publisher = Publisher(self, msg_type, self.resolve_name(topic), as_profile(qos))
        self.publishers.append(publisher)
        return publisher

    def create_serialized_publisher(
        self, type_name: str, topic: str, qos: QoSProfile | int, *, type_hash: str | None = None
    ) -> Publisher:
        """A publisher of CDR bytes (`publish_serialized`) of the type named `type_name`.

        With `type_hash` (RIHS01) the type need not be known to this process: a bag player
        replays a foreign type with the hash the bag recorded. Without it, the hash comes from
        the type store.
        """
        publisher = Publisher(
            self,
            None,
            self.resolve_name(topic),
            as_profile(qos),
            type_name=type_name,
            type_hash=type_hash,
        )
        self.publishers.append(publisher)
        return publisher

    def create_subscription(
        self,
        msg_type: type,
        topic: str,
        callback: Callable[[Any], None],
        qos: QoSProfile | int,
        *,
        raw: bool = False,
    ) -> Subscription:
        """Subscribe; with `raw=True` the callback gets the CDR bytes undecoded."""
        subscription = Subscription(
            self, msg_type, self.resolve_name(topic), callback, as_profile(qos), raw=raw
        )
        self.subscriptions.append(subscription)
        return subscription

    def create_service(
        self,
        srv_type: interfaces.ServiceType,
        srv_name: str,
        callback: Callable[[Any, Any], Any],
        *,
        qos_profile: QoSProfile = qos_profile_services_default,
    ) -> Service:
        service = Service(self, srv_type, self.resolve_name(srv_name), callback, qos_profile)
        self.services.append(service)
        return service

    def create_client(
        self,
        srv_type: interfaces.ServiceType,
        srv_name: str,
        *,
        qos_profile: QoSProfile = qos_profile_services_default,
    ) -> Client:
        client = Client(self, srv_type, self.resolve_name(srv_name), qos_profile)
        self.clients.append(client)
        return client

    def create_timer(
        self, timer_period_sec: float, callback: Callable[[], None], *, clock: Clock | None = None
    ) -> Timer:
        """A timer on the node's clock (ROS time), or on ``clock`` (e.g. a SteadyClock)."""
        timer = Timer(self, timer_period_sec, callback, clock or self._clock)
        self.timers.append(timer)
        if self._executor is not None:
            self._executor.wake()
        return timer

    def create_guard_condition(self, callback: Callable[[], None]) -> GuardCondition:
        """A condition any thread may `trigger()` to run `callback` on this node's executor."""
        guard = GuardCondition(self, callback)
        self.guards.append(guard)
        return guard

    def destroy_timer(self, timer: Timer) -> None:
        self._destroy(timer, self.timers)

    def destroy_publisher(self, publisher: Publisher) -> None:
        self._destroy(publisher, self.publishers)

    def destroy_subscription(self, subscription: Subscription) -> None:
        """Undeclare the subscription; a sample already queued for it may still be handled."""
        self._destroy(subscription, self.subscriptions)

    def destroy_service(self, service: Service) -> None:
        self._destroy(service, self.services)

    def destroy_client(self, client: Client) -> None:
        self._destroy(client, self.clients)

    def _destroy(self, entity: Any, owned: list[Any]) -> None:
        entity.destroy()
        if entity in owned:
            owned.remove(entity)

    def destroy_node(self) -> None:
        """Undeclare every entity and the node's token; the context stays open."""
        if self.destroyed:
            return
        self.destroyed = True
        self.context.nodes.discard(self)
        if self._executor is not None:
            self._executor.remove_node(self)
        entities: list[GuardCondition | Timer | Client | Service | Subscription | Publisher] = [
            *self.guards,
            *self.timers,
            *self.clients,
            *self.services,
            *self.subscriptions,
            *self.publishers,
        ]
        for entity in entities:
            entity.destroy()
        self.guards.clear()
        self.timers.clear()
        self.clients.clear()
        self.services.clear()
        self.subscriptions.clear()
        self.publishers.clear()
        self._logger._publisher = None
        self._token.undeclare()

    # -- executor wiring ------------------------------------------------------------------

    def _attach(self, executor: Any) -> None:
        with self._lock:
            self._executor = executor
            backlog, self._backlog = self._backlog, []
        for item in backlog:
            executor.post(item)

    def _detach(self, executor: Any) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None

    def _deliver(self, entity: Any) -> None:
        """Work arrived for `entity`: run it now if the executor is idle, else queue it."""
        executor = self._executor  # once attached, read without the lock (every message)
        if executor is None:
            with self._lock:
                executor = self._executor
                if executor is None:
                    if not entity.posted:
                        entity.posted = True
                        self._backlog.append(entity)
                    return
        if executor.run_inline(entity) or entity.posted:
            return
        entity.posted = True
        executor.post(entity)

    def _on_clock_change(self) -> None:
        if self._executor is not None:
            self._executor.wake()

    # -- time -----------------------------------------------------------------------------

    def _apply_sim_time(self, enabled: bool) -> None:
        if enabled and self._clock_subscription is None:
            self._clock.set_sim_time(True)
            self._clock_subscription = self.create_subscription(
                interfaces.get_message_class('rosgraph_msgs/msg/Clock'),
                'clock',
                lambda msg: self._clock.set_sim_now(Time.from_msg(msg.clock).nanoseconds),
                qos_profile_clock,
            )
        elif not enabled and self._clock_subscription is not None:
            self._clock_subscription.destroy()
            self.subscriptions.remove(self._clock_subscription)
            self._clock_subscription = None
            self._clock.set_sim_time(False)
        for timer in self.timers:
            timer.reset()

    # -- parameters -----------------------------------------------------------------------

    def _collect_overrides(
        self, process_args: Any, local_args: Any, parameter_overrides: Sequence[Parameter] | None
    ) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        fqn = self.get_fully_qualified_name()
        for args in (process_args, local_args):
            if args is None:
                continue
            for path in args.params_files:
                overrides.update(load_parameter_file(path, fqn))
            overrides.update(args.parameters)
        for parameter in parameter_overrides or ():
            overrides[parameter.name] = parameter.value
        return overrides

    def declare_parameter(
        self,
        name: str,
        value: Any = None,
        *,
        description: str = '',
        unit: str = '',
        low: float | None = None,
        high: float | None = None,
        read_only: bool = False,
        dynamic_typing: bool = False,
        secret: Callable[[Any], Any] | None = None,
    ) -> Parameter:
        """Declare a parameter with its default, as rclpy does, and its descriptor: what it
        means (``description``), its ``unit`` and, for a number, its range (``low``..``high``,
        enforced on the override and on every set).

        ``secret`` marks a value that holds a credential (a password, a database URL with
        one): the node uses the value, but everything the graph can read (the
        ``get_parameters`` service, ``/parameter_events``, so `stf param get/dump` and any
        recording of the events) shows ``secret(value)`` instead. rclpy has no such notion."""
        if name in self._parameters:
            raise ParameterError(f'parameter {name!r} is already declared')
        chosen = self._overrides.get(name, value)
        if (
            not dynamic_typing
            and value is not None
            and chosen is not value
            and not _same_kind(type_of(value), type_of(chosen))
        ):
            raise ParameterError(
                f'parameter {name!r}: override {chosen!r} is {type_of(chosen).name}, '
                f'expected {type_of(value).name}'
            )
        if isinstance(value, float) and isinstance(chosen, int) and not isinstance(chosen, bool):
            chosen = float(chosen)
        descriptor = descriptor_msg(
            name,
            chosen if chosen is not None else value,
            description=description,
            unit=unit,
            low=low,
            high=high,
            read_only=read_only,
            dynamic_typing=dynamic_typing or value is None,
        )
        refusal = out_of_range(descriptor, chosen)
        if refusal:
            raise ParameterError(refusal)
        self._parameters[name] = chosen
        self._descriptors[name] = descriptor
        if secret is not None:
            self._shown[name] = secret
        self._announce_parameters(new=[Parameter(name, chosen)])
        return Parameter(name, chosen)

    def declare_parameters(
        self, namespace: str, parameters: list[tuple[str, Any]]
    ) -> list[Parameter]:
        prefix = f'{namespace}.' if namespace else ''
        return [self.declare_parameter(prefix + name, value) for name, value in parameters]

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    def get_parameter(self, name: str) -> Parameter:
        if name not in self._parameters:
            if self._allow_undeclared:
                return Parameter(name, None)
            raise ParameterError(f'parameter {name!r} is not declared')
        return Parameter(name, self._parameters[name])

    def get_parameters_by_prefix(self, prefix: str) -> dict[str, Parameter]:
        start = f'{prefix}.' if prefix else ''
        return {
            name[len(start) :]: Parameter(name, value)
            for name, value in self._parameters.items()
            if name.startswith(start)
        }

    def add_on_set_parameters_callback(self, callback: Callable[[list[Parameter]], Any]) -> None:
        """`callback(parameters)` returns a SetParametersResult (or anything with
        `successful` and `reason`); a refusal leaves every value unchanged."""
        self._on_set_callbacks.append(callback)

    def undeclare_parameter(self, name: str) -> None:
        """Remove a declared parameter; raises ParameterError if it cannot be removed."""
        if name not in self._parameters:
            raise ParameterError(f'cannot undeclare parameter {name!r}: it is not declared')
        reason = self._undeclare_refusal(name)
        if reason:
            raise ParameterError(reason)
        self._remove_parameter(name)
        self._announce_parameters(deleted=[name])

    def _undeclare_refusal(self, name: str) -> str:
        descriptor = self._descriptors[name]
        if descriptor.read_only:
            return f'cannot undeclare parameter {name!r} because it is read-only'
        if not descriptor.dynamic_typing:
            return 'cannot undeclare a statically typed parameter'
        return ''

    def _remove_parameter(self, name: str) -> None:
        del self._parameters[name]
        self._descriptors.pop(name, None)
        self._shown.pop(name, None)

    def _public(self, parameter: Parameter) -> Parameter:
        """The parameter as the graph may see it (a secret's value hidden)."""
        shown = self._shown.get(parameter.name)
        if shown is None or parameter.value is None:
            return parameter
        return Parameter(parameter.name, shown(parameter.value))

    def _announce_parameters(
        self,
        *,
        new: list[Parameter] | None = None,
        changed: list[Parameter] | None = None,
        deleted: list[str] | None = None,
    ) -> None:
        """Publish one ParameterEvent for a change (the only place that publishes them)."""
        if self._parameter_events is None or not (new or changed or deleted):
            return
        self._parameter_events.publish(
            parameter_event(
                self.get_fully_qualified_name(),
                self._clock.now().to_msg(),
                new=[self._public(p) for p in new or ()],
                changed=[self._public(p) for p in changed or ()],
                deleted=deleted or (),
            )
        )

    def _check(self, parameter: Parameter) -> str:
        """Reason the parameter cannot be set, or '' if it can."""
        if parameter.name not in self._parameters:
            return '' if self._allow_undeclared else f'parameter {parameter.name!r} not declared'
        if parameter.value is None:  # NOT_SET: a deletion (`ros2 param delete`)
            return self._undeclare_refusal(parameter.name)
        descriptor = self._descriptors[parameter.name]
        if descriptor.read_only:
            return f'parameter {parameter.name!r} is read-only'
        try:
            new_type = type_of(parameter.value)
        except ParameterError as exc:
            return str(exc)
        if not descriptor.dynamic_typing and not _same_kind(
            ParameterType(descriptor.type), new_type
        ):
            return (
                f'wrong parameter type for {parameter.name!r}: expected '
                f'{ParameterType(descriptor.type).name}, got {new_type.name}'
            )
        return out_of_range(descriptor, parameter.value)

    def set_parameters(self, parameters: list[Parameter]) -> list[Any]:
        return [self.set_parameters_atomically([p]) for p in parameters]

    def set_parameters_atomically(self, parameters: list[Parameter]) -> Any:
        result_cls = interfaces.get_message_class('rcl_interfaces/msg/SetParametersResult')
        for parameter in parameters:
            reason = self._check(parameter)
            if reason:
                return result_cls(successful=False, reason=reason)
        for callback in self._on_set_callbacks:
            verdict = callback(parameters)
            if not verdict.successful:
                return result_cls(successful=False, reason=verdict.reason)
        new: list[Parameter] = []
        changed: list[Parameter] = []
        deleted: list[str] = []
        for parameter in parameters:
            value = parameter.value
            if value is None:
                if parameter.name in self._parameters:
                    self._remove_parameter(parameter.name)
                    deleted.append(parameter.name)
                continue
            descriptor = self._descriptors.get(parameter.name)
            if (
                descriptor is not None
                and descriptor.type == ParameterType.DOUBLE
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            if parameter.name not in self._descriptors:
                self._descriptors[parameter.name] = descriptor_msg(parameter.name, value)
            (changed if parameter.name in self._parameters else new).append(
                Parameter(parameter.name, value)
            )
            self._parameters[parameter.name] = value
            if parameter.name == 'use_sim_time':
                self._apply_sim_time(bool(value))
        self._announce_parameters(new=new, changed=changed, deleted=deleted)
        return result_cls(successful=True, reason='')

    def _start_parameter_services(self) -> None:
        base = f'{self.get_fully_qualified_name()}/'
        srv = interfaces.get_service
        self.create_service(
            srv('rcl_interfaces/srv/ListParameters'), base + 'list_parameters', self._srv_list
        )
        self.create_service(
            srv('rcl_interfaces/srv/GetParameters'), base + 'get_parameters', self._srv_get
        )
        self.create_service(
            srv('rcl_interfaces/srv/SetParameters'), base + 'set_parameters', self._srv_set
        )
        self.create_service(
            srv('rcl_interfaces/srv/SetParametersAtomically'),
            base + 'set_parameters_atomically',
            self._srv_set_atomically,
        )
        self.create_service(
            srv('rcl_interfaces/srv/DescribeParameters'),
            base + 'describe_parameters',
            self._srv_describe,
        )
        self.create_service(
            srv('rcl_interfaces/srv/GetParameterTypes'),
            base + 'get_parameter_types',
            self._srv_types,
        )

    def _srv_list(self, request: Any, response: Any) -> Any:
        selected = names_matching(self._parameters, list(request.prefixes), int(request.depth))
        response.result.names = selected
        response.result.prefixes = sorted({n.rsplit('.', 1)[0] for n in selected if '.' in n})
        return response

    def _srv_get(self, request: Any, response: Any) -> Any:
        response.values = [
            self._public(Parameter(n, self._parameters.get(n))).to_value_msg()
            for n in request.names
        ]
        return response

    def _parameters_from(self, messages: list[Any]) -> list[Parameter] | str:
        try:
            return [Parameter(p.name, value_from_msg(p.value)) for p in messages]
        except ParameterError as exc:
            return str(exc)

    def _srv_set(self, request: Any, response: Any) -> Any:
        result_cls = interfaces.get_message_class('rcl_interfaces/msg/SetParametersResult')
        results = []
        for message in request.parameters:
            parsed = self._parameters_from([message])
            results.append(
                result_cls(successful=False, reason=parsed)
                if isinstance(parsed, str)
                else self.set_parameters_atomically(parsed)
            )
        response.results = results
        return response

    def _srv_set_atomically(self, request: Any, response: Any) -> Any:
        parsed = self._parameters_from(list(request.parameters))
        if isinstance(parsed, str):
            response.result.successful, response.result.reason = False, parsed
        else:
            response.result = self.set_parameters_atomically(parsed)
        return response

    def _srv_describe(self, request: Any, response: Any) -> Any:
        descriptor_cls = interfaces.get_message_class('rcl_interfaces/msg/ParameterDescriptor')
        response.descriptors = [
            self._descriptors.get(n, descriptor_cls(name=n)) for n in request.names
        ]
        return response

    def _srv_types(self, request: Any, response: Any) -> Any:
        response.types = [int(type_of(self._parameters.get(n))) for n in request.names]
        return response


def _same_kind(expected: ParameterType, actual: ParameterType) -> bool:
    """Integers are accepted where doubles are declared (YAML writes `10` for `10.0`)."""
    return expected == actual or (expected, actual) in {
        (ParameterType.DOUBLE, ParameterType.INTEGER),
        (ParameterType.DOUBLE_ARRAY, ParameterType.INTEGER_ARRAY),
    }
