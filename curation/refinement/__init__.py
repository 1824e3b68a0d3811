"""Query refinement: product model, agent loop, backends (rules offline, an OpenAI-compatible LLM),
guards, attribute extraction, and the lexicons (data files in lexicons/)."""
from curation.refinement.guards import Problem, Window, check_guards
from curation.refinement.llm import ChatClient, OpenAIBackend, OpenAIParams
from curation.refinement.loop import AgentRun, Backend, run_agents
from curation.refinement.product import Product
from curation.refinement.rules import RulesBackend

__all__ = ["AgentRun", "Backend", "ChatClient", "OpenAIBackend", "OpenAIParams", "Problem", "Product", "RulesBackend",
           "Window", "check_guards", "run_agents"]
