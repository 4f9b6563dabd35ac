//! `mart:kafka/producer` as a host part (see mart-runtime's parts.rs): a
//! component publishes to the topics its manifest lists
//! (`kafka_publish_topics` in `[component.<id>.tool.mart]`), through the
//! host's publisher once the host has one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use mart_manifest::App;
use mart_runtime::{HostPart, InstanceContext, InstanceState};
use wasmtime::component::Linker;

use crate::{ProducerHost, Publisher};

pub struct ProducerPart {
    publisher: OnceLock<Publisher>,
    topics: HashMap<String, Arc<BTreeSet<String>>>,
}

impl ProducerPart {
    /// The part for `app`'s components, without a publisher yet.
    pub fn new(app: &App) -> anyhow::Result<Self> {
        let topics = app
            .manifest
            .component
            .iter()
            .map(|(id, component)| {
                let settings = component.mart_settings().map_err(anyhow::Error::msg)?;
                let topics = settings.kafka_publish_topics.into_iter().collect();
                Ok((id.clone(), Arc::new(topics)))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            publisher: OnceLock::new(),
            topics,
        })
    }

    /// Lets components publish (until then, a publish is refused).
    pub fn set_publisher(&self, publisher: Publisher) {
        let _ = self.publisher.set(publisher);
    }
}

impl HostPart for ProducerPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        crate::add_to_linker(linker, InstanceState::part::<ProducerHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        let topics = self
            .topics
            .get(&*of.component.id)
            .cloned()
            .unwrap_or_default();
        Box::new(ProducerHost::new(self.publisher.get().cloned(), topics))
    }
}
